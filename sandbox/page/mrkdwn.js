// Slack's mrkdwn, drawn as DOM nodes (never as HTML strings, so message text cannot inject
// markup): *bold*, _italic_, ~strike~, `code`, ``` blocks ```, > quotes, <links|labels>,
// <@user> and <#channel> mentions, <!date^…> tokens (in the reader's time zone) and :emoji:.
(function () {
  "use strict";

  // The emoji names Slack knows (/emoji.js, the same table the composer uses).
  const EMOJI = window.SLACK_EMOJI || {};

  const INLINE = new RegExp(
    [
      "<([^<>\\n]+)>", // 1: a Slack token: link, mention, date
      "`([^`\\n]+)`", // 2: code
      "(?<![\\w*])\\*(?!\\s)([^*\\n]+?)(?<!\\s)\\*(?![\\w*])", // 3: bold
      "(?<![\\w_])_(?!\\s)([^_\\n]+?)(?<!\\s)_(?![\\w_])", // 4: italic
      "(?<![\\w~])~(?!\\s)([^~\\n]+?)(?<!\\s)~(?![\\w~])", // 5: strike
      // 6: a bare link, which ends before an escaped "&gt;" or "&lt;"
      "(https?:\\/\\/(?:(?!&[lg]t;)[^\\s<>])*[^\\s<>.,;:!?)\\]'\"&])",
    ].join("|"),
    "g",
  );

  function decode(text) {
    return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function emoji(text) {
    return text.replace(/:([a-z0-9_+'-]+):/g, (whole, name) => EMOJI[name] || whole);
  }

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function safeHref(url) {
    return /^(https?:|mailto:)/i.test(url) ? url : null;
  }

  const DEFAULT_CONTEXT = {
    user: (id) => id,
    channel: (id) => id,
    tz: null,
  };

  // Times and dates in one time zone (the reader's Slack zone) and one format: 24-hour clock.
  const LOCALE = "en-GB";

  function zoned(options, tz) {
    try {
      return new Intl.DateTimeFormat(LOCALE, Object.assign({ timeZone: tz || undefined }, options));
    } catch (e) {
      return new Intl.DateTimeFormat(LOCALE, options); // an unknown zone: the browser's
    }
  }

  function formatTime(date, tz, { seconds = false } = {}) {
    const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (seconds) options.second = "2-digit";
    return zoned(options, tz).format(date);
  }

  // Days since the epoch of the calendar day `date` falls on in `tz`.
  function dayNumber(date, tz) {
    const parts = {};
    for (const p of zoned({ year: "numeric", month: "numeric", day: "numeric" }, tz).formatToParts(date)) {
      parts[p.type] = Number(p.value);
    }
    return Date.UTC(parts.year, parts.month - 1, parts.day) / 86400000;
  }

  // <!date^1700000000^{date_short_pretty} at {time}|fallback>
  function formatDate(seconds, format, tz) {
    const date = new Date(Number(seconds) * 1000);
    if (Number.isNaN(date.getTime())) return null;
    const diff = dayNumber(date, tz) - dayNumber(new Date(), tz);
    const pretty = { 0: "today", [-1]: "yesterday", 1: "tomorrow" }[diff];
    const fmt = (options) => zoned(options, tz).format(date);
    const long = { weekday: "long", year: "numeric", month: "long", day: "numeric" };
    const plain = { year: "numeric", month: "long", day: "numeric" };
    const short = { year: "numeric", month: "short", day: "numeric" };
    const minutes = Math.round((Date.now() - date.getTime()) / 60000);
    const ago =
      Math.abs(minutes) < 1 ? "just now"
        : Math.abs(minutes) < 60 ? `${Math.abs(minutes)} minutes ${minutes > 0 ? "ago" : "from now"}`
          : `${Math.round(Math.abs(minutes) / 60)} hours ${minutes > 0 ? "ago" : "from now"}`;
    const tokens = {
      date_num: zoned({ year: "numeric", month: "2-digit", day: "2-digit" }, tz)
        .formatToParts(date)
        .reduce((acc, p) => Object.assign(acc, { [p.type]: p.value }), {}),
      date: fmt(plain),
      date_short: fmt(short),
      date_long: fmt(long),
      date_pretty: pretty || fmt(plain),
      date_short_pretty: pretty || fmt(short),
      date_long_pretty: pretty || fmt(long),
      time: formatTime(date, tz),
      time_secs: formatTime(date, tz, { seconds: true }),
      ago: ago,
    };
    const n = tokens.date_num;
    tokens.date_num = `${n.year}-${n.month}-${n.day}`;
    return format.replace(/\{(\w+)\}/g, (whole, name) => tokens[name] ?? whole);
  }

  function token(raw, ctx) {
    const bar = raw.indexOf("|");
    const target = bar < 0 ? raw : raw.slice(0, bar);
    const label = bar < 0 ? "" : decode(raw.slice(bar + 1));
    if (target.startsWith("@")) {
      return node("span", "mention", "@" + (label || ctx.user(target.slice(1))));
    }
    if (target.startsWith("#")) {
      return node("span", "mention channel-mention", "#" + (label || ctx.channel(target.slice(1))));
    }
    if (target.startsWith("!subteam^")) {
      return node("span", "mention", label ? "@" + label.replace(/^@/, "") : "@" + target.slice(9));
    }
    if (/^!(here|channel|everyone)$/.test(target)) {
      return node("span", "mention", "@" + target.slice(1));
    }
    if (target.startsWith("!date^")) {
      const [, seconds, format = "{date}", link] = target.split("^");
      const shown = formatDate(seconds, decode(format), ctx.tz) || label || target;
      const el = node("time", "date", shown);
      el.dateTime = new Date(Number(seconds) * 1000).toISOString();
      if (label) el.title = label;
      if (link && safeHref(decode(link))) {
        const a = node("a");
        a.href = decode(link);
        a.append(el);
        return a;
      }
      return el;
    }
    if (target.startsWith("!")) return document.createTextNode(label || target.slice(1));
    const href = safeHref(decode(target));
    if (!href) return document.createTextNode(decode(label || target));
    const a = node("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.append(...(label ? inline(label, ctx) : [document.createTextNode(decode(target))]));
    return a;
  }

  // One line of text (no newlines) as a list of nodes.
  function inline(text, ctx) {
    const out = [];
    let at = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > at) out.push(document.createTextNode(emoji(decode(text.slice(at, m.index)))));
      if (m[1] !== undefined) out.push(token(m[1], ctx));
      else if (m[2] !== undefined) out.push(node("code", "", decode(m[2])));
      else if (m[6] !== undefined) out.push(token(m[6], ctx));
      else {
        const tag = m[3] !== undefined ? "b" : m[4] !== undefined ? "i" : "s";
        const el = node(tag);
        el.append(...inline(m[3] ?? m[4] ?? m[5], ctx));
        out.push(el);
      }
      at = m.index + m[0].length;
    }
    if (at < text.length) out.push(document.createTextNode(emoji(decode(text.slice(at)))));
    return out;
  }

  function lines(text, ctx, into) {
    const rows = text.split("\n");
    rows.forEach((row, i) => {
      into.append(...inline(row, ctx));
      if (i < rows.length - 1) into.append(node("br"));
    });
  }

  // Text outside code blocks: lines starting with ">" become quotes; ">>>" quotes the rest.
  function paragraphs(text, ctx, into) {
    const rows = text.split("\n");
    let plain = [];
    let quote = [];
    const flushPlain = () => {
      if (plain.length) {
        const span = node("span", "mrkdwn-text");
        lines(plain.join("\n"), ctx, span);
        into.append(span);
        plain = [];
      }
    };
    const flushQuote = () => {
      if (quote.length) {
        const q = node("blockquote");
        lines(quote.join("\n"), ctx, q);
        into.append(q);
        quote = [];
      }
    };
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const rest = /^(>>>|&gt;&gt;&gt;)\s?/.exec(row);
      if (rest) {
        flushPlain();
        quote.push(row.slice(rest[0].length), ...rows.slice(i + 1));
        break;
      }
      const q = /^(>|&gt;)\s?/.exec(row);
      if (q) {
        flushPlain();
        quote.push(row.slice(q[0].length));
      } else {
        flushQuote();
        plain.push(row);
      }
    }
    flushPlain();
    flushQuote();
  }

  function render(text, ctx) {
    const context = Object.assign({}, DEFAULT_CONTEXT, ctx || {});
    const root = node("div", "mrkdwn");
    const parts = String(text ?? "").split("```");
    parts.forEach((part, i) => {
      if (i % 2 === 1 && i < parts.length - 1) {
        root.append(node("pre", "code-block", decode(part.replace(/^\n/, "").replace(/\n$/, ""))));
      } else {
        // An unclosed fence is shown as typed; a newline right after a code block is dropped.
        const piece = i % 2 === 1 ? "```" + part : i > 0 ? part.replace(/^\n/, "") : part;
        if (piece) paragraphs(piece, context, root);
      }
    });
    return root;
  }

  window.Mrkdwn = { render, inline, emoji, decode, formatDate, formatTime };
})();
