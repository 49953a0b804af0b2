// The sandbox page: a small Slack client for one person at a time, drawn from the Slack
// stand-in's state (GET /api/state) and kept live by its changes (WebSocket /ws). What the
// person does goes to the sandbox server, which delivers it to Baton as Slack would.
(function () {
  "use strict";

  const $ = (selector) => document.querySelector(selector);
  const SLACKBOT = "USLACKBOT";
  const ASSISTANT_THREAD = "assistant_app_thread";
  // A message taller than this (px) is shown clamped, with "Show more".
  const LONG_MESSAGE = 600;

  const S = {
    me: null,
    channel: null,
    thread: null,
    assistant: null, // ts of the assistant thread open in the container
    assistantOpen: false,
    assistantNote: "",
    highlight: null, // ts of a message a permalink pointed at
    tab: "messages",
    seq: 0,
    team: null,
    bot: null,
    users: new Map(),
    channels: [],
    messages: new Map(), // channel id -> Map(ts -> message)
    views: [],
    home: null,
    statuses: new Map(), // "channel/thread_ts" -> {status, loading}
    threads: new Map(), // "channel/thread_ts" -> assistant thread (title, prompts, context)
    calls: [],
    info: {},
    socket: null,
    ready: false,
    early: [],
    modalKey: null,
    drawPending: false,
    expanded: new Set(), // "channel/ts" of long messages opened with "Show more"
    feedback: new Map(), // "channel/ts/action_id" -> "positive" | "negative"
  };

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }

  // names and times, as this person sees them

  function personName(id) {
    if (S.bot && id === S.bot.id) return S.bot.real_name || "Baton";
    if (id === SLACKBOT) return "Slackbot";
    const user = S.users.get(id);
    return user ? user.real_name || user.name : id;
  }

  function channelName(id) {
    const c = S.channels.find((ch) => ch.id === id);
    if (!c) return id;
    // Every DM here is a person's DM with Baton.
    return c.is_im ? personName(S.bot.id) : c.name;
  }

  // The viewer's Slack time zone: every time on the page is shown in it, on a 24-hour clock.
  function myZone() {
    const me = S.users.get(S.me);
    return (me && me.tz) || null;
  }

  const ctx = {
    user: personName,
    channel: channelName,
    get tz() {
      return myZone();
    },
  };

  function time(ts, options) {
    return Mrkdwn.formatTime(new Date(Number(ts) * 1000), myZone(), options);
  }

  function myDm() {
    const dm = S.channels.find((c) => c.is_im && c.user === S.me);
    return dm ? dm.id : null;
  }

  function currentChannel() {
    return S.channels.find((c) => c.id === S.channel) || null;
  }

  // where we are, kept in the address so a reload comes back to it

  function remember() {
    const params = new URLSearchParams();
    params.set("user", S.me);
    if (S.channel) params.set("channel", S.channel);
    if (S.thread) params.set("thread", S.thread);
    if (S.assistantOpen && S.assistant) params.set("assistant", S.assistant);
    history.replaceState(null, "", "?" + params.toString());
    try {
      localStorage.setItem("baton-sandbox-user", S.me);
    } catch (e) {
      // Storage may be off; the address still holds it.
    }
  }

  function startFromAddress() {
    const params = new URLSearchParams(location.search);
    let saved = null;
    try {
      saved = localStorage.getItem("baton-sandbox-user");
    } catch (e) {
      saved = null;
    }
    S.me = params.get("user") || saved || "U0ALICE";
    S.channel = params.get("channel") || "C0GENERAL";
    S.thread = params.get("thread");
    S.assistant = params.get("assistant");
    S.assistantOpen = Boolean(S.assistant);
    S.highlight = params.get("message");
  }

  // state and live changes

  function load(state) {
    S.seq = state.seq;
    S.me = state.me;
    S.team = state.team;
    S.bot = state.bot;
    S.users = new Map(state.users.map((u) => [u.id, u]));
    S.channels = state.channels;
    S.messages = new Map();
    for (const [channel, list] of Object.entries(state.messages)) {
      S.messages.set(channel, new Map(list.map((m) => [m.ts, m])));
    }
    S.views = state.views || [];
    S.home = state.home;
    S.statuses = new Map(
      state.statuses.map((s) => [`${s.channel}/${s.thread_ts}`, { status: s.status, loading: s.loading_messages || [] }]),
    );
    S.threads = new Map((state.assistant_threads || []).map((t) => [`${t.channel}/${t.thread_ts}`, t]));
    S.calls = state.calls || [];
    S.info = state.info || {};
    if (!currentChannel()) S.channel = (S.channels.find((c) => !c.is_im) || {}).id;
    if (S.assistant && !S.threads.has(`${myDm()}/${S.assistant}`)) {
      S.assistant = null;
      S.assistantOpen = false;
    }
  }

  function upsert(message) {
    if (!S.messages.has(message.channel)) S.messages.set(message.channel, new Map());
    S.messages.get(message.channel).set(message.ts, message);
  }

  function apply(frame) {
    if (frame.seq <= S.seq) return;
    S.seq = frame.seq;
    if (frame.call) {
      S.calls.push(frame.call);
      if (S.calls.length > 500) S.calls.splice(0, S.calls.length - 500);
      draw();
      return;
    }
    const c = frame.change;
    switch (c.type) {
      case "message_deleted":
        if (S.messages.has(c.channel)) S.messages.get(c.channel).delete(c.ts);
        break;
      case "status_set":
        if (c.status) S.statuses.set(`${c.channel}/${c.thread_ts}`, { status: c.status, loading: c.loading_messages || [] });
        else S.statuses.delete(`${c.channel}/${c.thread_ts}`);
        break;
      case "assistant_thread_changed":
        S.threads.set(`${c.thread.channel}/${c.thread.thread_ts}`, c.thread);
        break;
      case "view_opened":
        S.views = [c.view];
        break;
      case "view_pushed":
        S.views.push(c.view);
        break;
      case "view_updated":
        S.views = S.views.map((v) => (v.id === c.view.id ? c.view : v));
        break;
      case "views_closed":
        S.views = [];
        break;
      case "home_published":
        S.home = c.view;
        break;
      default:
        if (c.message) upsert(c.message);
    }
    draw();
  }

  function setConnected(on) {
    const dot = $("#connection");
    dot.classList.toggle("on", on);
    dot.title = on ? "live" : "reconnecting…";
  }

  async function connect() {
    const old = S.socket;
    S.socket = null;
    if (old) old.close();
    S.ready = false;
    S.early = [];
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws?user=${encodeURIComponent(S.me)}`);
    S.socket = socket;
    socket.onmessage = (event) => {
      if (S.socket !== socket) return;
      const frame = JSON.parse(event.data);
      if (S.ready) apply(frame);
      else S.early.push(frame);
    };
    socket.onclose = () => {
      if (S.socket !== socket) return;
      setConnected(false);
      setTimeout(() => {
        if (S.socket === socket) connect();
      }, 1000);
    };
    // Open the socket first, then read the state: frames in between are kept and the
    // sequence numbers drop the ones the state already holds.
    const opened = await new Promise((resolve) => {
      socket.onopen = () => resolve(true);
      socket.onerror = () => resolve(false);
    });
    if (!opened || S.socket !== socket) return;
    const response = await fetch(`/api/state?user=${encodeURIComponent(S.me)}`);
    if (S.socket !== socket) return;
    load(await response.json());
    for (const frame of S.early) apply(frame);
    S.early = [];
    S.ready = true;
    setConnected(true);
    remember();
    drawNow();
    if (S.highlight) showHighlight();
    if (S.tab === "home") openHome();
  }

  // POST to the sandbox; a refusal is toasted unless `quiet` (the caller shows it).
  async function send(path, body, { quiet = false } = {}) {
    try {
      const response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ user: S.me }, body)),
      });
      const answer = await response.json();
      if (!answer.ok && answer.detail && !quiet) toast(answer.detail);
      return answer;
    } catch (e) {
      if (!quiet) toast("The sandbox is not reachable.");
      return { ok: false, detail: "The sandbox is not reachable." };
    }
  }

  function toast(text) {
    const t = node("div", "toast", text);
    $("#toasts").append(t);
    setTimeout(() => t.remove(), 6000);
  }

  // drawing

  function draw() {
    if (S.drawPending) return;
    S.drawPending = true;
    requestAnimationFrame(() => {
      S.drawPending = false;
      drawNow();
    });
  }

  function drawNow() {
    if (!S.ready) return;
    drawSidebar();
    drawChannel();
    drawThread();
    drawAssistant();
    drawModal();
    drawLog();
  }

  function drawSidebar() {
    $("#team-name").textContent = (S.team && S.team.name) || "Baton Sandbox";
    const identity = $("#identity");
    const people = [...S.users.values()];
    if (identity.options.length !== people.length) {
      identity.replaceChildren(
        ...people.map((u) => {
          const option = node("option", "", u.real_name || u.name);
          option.value = u.id;
          return option;
        }),
      );
    }
    identity.value = S.me;

    const item = (channel, label) => {
      const li = node("li");
      const b = node("button", "channel-link", label);
      b.type = "button";
      b.dataset.channel = channel.id;
      b.classList.toggle("active", channel.id === S.channel);
      li.append(b);
      return li;
    };
    $("#channel-list").replaceChildren(
      ...S.channels.filter((c) => !c.is_im).map((c) => item(c, "# " + c.name)),
    );
    const dm = S.channels.find((c) => c.is_im && c.user === S.me);
    $("#dm-list").replaceChildren(...(dm ? [item(dm, (S.bot && S.bot.real_name) || "Baton")] : []));

    const tryIt = $("#try");
    if (!tryIt.childElementCount) {
      tryIt.append(node("h3", "", "Try"));
      const list = node("ul");
      const demo = S.info.demo ? S.info.demo.url : "https://status.example.com";
      const examples = [
        ...(S.info.playbooks || [])
          .filter((p) => p.name !== "morning-digest")
          .map((p) => ["@Baton run " + p.name, p.description]),
        [
          '/baton schedule add "every 1m" run shop-health alert=on_change',
          "a schedule: a digest now, then only when something changes",
        ],
        [
          `/baton schedule add "every weekday at 09:00" run morning-digest ${demo}/health ${demo}/payments/health alert=on_change`,
          "the README's morning digest, aimed at the demo shop",
        ],
        ["/baton schedule list", "this channel's schedules"],
        ["/baton agents", "the specialists and playbooks"],
        ["/baton help", "everything Baton understands"],
      ];
      for (const [text, title] of examples) {
        const b = node("button", "example", text);
        b.type = "button";
        b.title = title;
        b.dataset.example = text;
        const li = node("li");
        li.append(b);
        list.append(li);
      }
      tryIt.append(list);
    }

    const demo = $("#demo");
    if (!demo.childElementCount && S.info.demo) {
      const title = node("h3");
      const link = node("a", "", "Demo shop ↗");
      link.href = S.info.demo.url;
      link.target = "_blank";
      link.rel = "noopener";
      title.append(link);
      const list = node("ul");
      for (const e of S.info.demo.endpoints) {
        const b = node("button", "example endpoint", `${e.method} ${new URL(e.url).pathname}`);
        b.type = "button";
        b.title = `${e.what} — click to add the URL to your message`;
        b.dataset.example = e.url;
        b.dataset.append = "true";
        const li = node("li");
        li.append(b);
        list.append(li);
      }
      demo.append(title, list);
    }
    const model = S.info.model || "rules";
    const zone = myZone();
    const info = $("#model-info");
    info.replaceChildren(
      node("div", "", `Model: ${model}${model === "rules" ? " (offline)" : ""} · ${S.info.catalog || "demo catalog"}`),
      node("div", "", `Times in ${personName(S.me)}'s time zone${zone ? ` (${zone})` : ""}`),
    );
    if (S.info.real_slack) info.append(node("div", "real-slack", S.info.real_slack));
  }

  function initials(id) {
    return personName(id).slice(0, 1).toUpperCase();
  }

  function avatarColor(id) {
    let h = 0;
    for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
    return `hsl(${h} 45% 45%)`;
  }

  function repliesOf(channel, ts) {
    const all = S.messages.get(channel);
    if (!all) return [];
    return [...all.values()]
      .filter((m) => m.thread_ts === ts && m.ts !== ts)
      .sort((a, b) => Number(a.ts) - Number(b.ts));
  }

  function threadTitle(channel, ts) {
    const thread = S.threads.get(`${channel}/${ts}`);
    return (thread && thread.title) || "New chat";
  }

  function messageEl(m, { inThread }) {
    const el = node("article", "message");
    el.dataset.ts = m.ts;
    el.dataset.channel = m.channel;
    const fromApp = Boolean(m.bot_id) || m.user === SLACKBOT;
    if (fromApp) el.classList.add("from-app");
    if (m.ephemeral_for) el.classList.add("ephemeral");
    if (m.streaming) el.classList.add("streaming");
    if (m.ts === S.highlight) el.classList.add("highlight");

    const avatar = node("div", "avatar", fromApp && m.user !== SLACKBOT ? "B" : initials(m.user));
    avatar.style.background = m.user === SLACKBOT ? "#1264a3" : fromApp ? "#1f3b57" : avatarColor(m.user);
    const body = node("div", "message-body");
    const meta = node("div", "meta");
    meta.append(node("span", "author", personName(m.user)));
    if (fromApp) meta.append(node("span", "app-badge", "APP"));
    const when = node("time", "when", time(m.ts));
    when.dateTime = new Date(Number(m.ts) * 1000).toISOString();
    meta.append(when);
    if (m.edited) meta.append(node("span", "edited", "(edited)"));
    body.append(meta);
    const isAssistantThread = m.subtype === ASSISTANT_THREAD;
    if (isAssistantThread) {
      body.append(node("div", "thread-card", "✦ " + threadTitle(m.channel, m.ts)));
    } else {
      const content = BlockKit.renderMessageContent(m, { ctx });
      content.dataset.key = `${m.channel}/${m.ts}`;
      // A streamed task list is a card that keeps changing: it is never clamped.
      const stream = m.streaming || m.stream_expired || m.plan_title || (m.tasks && m.tasks.length);
      if (!stream) content.dataset.clampable = "true";
      markFeedback(content, m);
      body.append(content);
    }
    if (m.ephemeral_for) body.append(node("div", "ephemeral-note", "Only visible to you"));
    if (m.reactions && m.reactions.length) {
      const row = node("div", "reactions");
      for (const r of m.reactions) {
        row.append(node("span", "reaction", `${Mrkdwn.emoji(`:${r.name}:`)} ${r.count}`));
      }
      body.append(row);
    }
    if (!inThread && !m.ephemeral_for) {
      const replies = repliesOf(m.channel, m.ts).filter((r) => !r.ephemeral_for);
      const open = node("button", replies.length || isAssistantThread ? "reply-count" : "reply-link");
      open.type = "button";
      if (isAssistantThread) open.dataset.assistantThread = m.ts;
      else open.dataset.thread = m.ts;
      open.textContent = replies.length
        ? `${replies.length} ${replies.length === 1 ? "reply" : "replies"} · last ${time(replies[replies.length - 1].ts)}`
        : isAssistantThread ? "Open in the assistant" : "Reply in thread";
      body.append(open);
    }
    el.append(avatar, body);
    return el;
  }

  // Feedback buttons keep the half this person pressed.
  function markFeedback(content, m) {
    for (const b of content.querySelectorAll(".bk-feedback-button")) {
      const chosen = S.feedback.get(`${m.channel}/${m.ts}/${b.dataset.actionId}`);
      b.classList.toggle("selected", chosen === b.dataset.feedback);
      b.setAttribute("aria-pressed", String(chosen === b.dataset.feedback));
    }
  }

  // Lists stick to their newest entry unless the person scrolled up; a redraw, a resize or a
  // pane opening beside them keeps them there.
  function stuck(list) {
    return list.dataset.stick !== "false";
  }

  function follow(list) {
    list.addEventListener("scroll", () => {
      list.dataset.stick = String(list.scrollHeight - list.scrollTop - list.clientHeight < 40);
    });
    new ResizeObserver(() => {
      if (stuck(list)) list.scrollTop = list.scrollHeight;
    }).observe(list);
  }

  function redraw(list, elements) {
    const scroll = list.scrollTop;
    list.replaceChildren(...elements);
    clampLong(list);
    list.scrollTop = stuck(list) ? list.scrollHeight : scroll;
  }

  function clampLong(list) {
    for (const content of list.querySelectorAll(".message-content[data-clampable]")) {
      const key = content.dataset.key;
      if (content.scrollHeight <= LONG_MESSAGE) continue;
      const expanded = S.expanded.has(key);
      content.classList.toggle("clamped", !expanded);
      const more = node("button", "show-more", expanded ? "Show less" : "Show more");
      more.type = "button";
      more.dataset.expand = key;
      content.after(more);
    }
  }

  function intro() {
    const card = node("div", "intro");
    card.append(
      node("h3", "", "This is a local Slack workspace with Baton in it."),
      node(
        "p",
        "",
        "Ask with @Baton in a channel, /baton anywhere, a DM to Baton, or ✦ Ask Baton at the top. " +
          "Switch who you are on the left: Alice asks, Bob approves, Carol may not.",
      ),
    );
    return card;
  }

  function drawChannel() {
    const channel = currentChannel();
    if (!channel) return;
    const isDm = channel.is_im;
    $("#channel-title").textContent = isDm ? personName(S.bot.id) : "# " + channel.name;
    $("#channel-tabs").hidden = !isDm;
    if (!isDm) S.tab = "messages";
    for (const b of document.querySelectorAll("#channel-tabs button")) {
      b.classList.toggle("active", b.dataset.tab === S.tab);
    }
    const home = S.tab === "home";
    $("#messages").hidden = home;
    $("#composer").hidden = home;
    $("#home").hidden = !home;
    $("#composer textarea").placeholder = isDm ? "Message Baton" : `Message #${channel.name}`;
    if (home) {
      const view = S.home;
      $("#home").replaceChildren(
        view ? BlockKit.renderBlocks(view.blocks, { ctx }) : node("p", "muted", "Opening Baton's Home tab…"),
      );
      return;
    }
    const all = [...(S.messages.get(channel.id) || new Map()).values()]
      .filter((m) => !m.thread_ts || m.thread_ts === m.ts)
      .sort((a, b) => Number(a.ts) - Number(b.ts));
    const list = $("#messages");
    redraw(list, all.length ? all.map((m) => messageEl(m, { inThread: false })) : [intro()]);
  }

  function statusLine(where, channel, ts) {
    const status = S.statuses.get(`${channel}/${ts}`);
    where.replaceChildren();
    if (!status) return;
    where.append(`${personName(S.bot.id)} ${status.status}`);
    if (status.loading.length) {
      // Slack rotates the loading messages; a few seconds each.
      const at = Math.floor(Date.now() / 3000) % status.loading.length;
      where.append(node("span", "loading", status.loading[at]));
    }
  }

  function drawThread() {
    const pane = $("#thread-pane");
    const root = S.thread && (S.messages.get(S.channel) || new Map()).get(S.thread);
    if (!root || S.assistantOpen) {
      pane.hidden = true;
      return;
    }
    pane.hidden = false;
    $("#thread-where").textContent = channelName(S.channel);
    const items = [root, ...repliesOf(S.channel, S.thread)];
    redraw(
      $("#thread-messages"),
      items.map((m) => messageEl(m, { inThread: true })),
    );
    statusLine($("#thread-status"), S.channel, S.thread);
  }

  function drawAssistant() {
    const pane = $("#assistant-pane");
    $("#assistant-toggle").classList.toggle("active", S.assistantOpen);
    pane.hidden = !S.assistantOpen;
    if (!S.assistantOpen) return;
    const dm = myDm();
    const thread = S.assistant ? S.threads.get(`${dm}/${S.assistant}`) : null;
    $("#assistant-name").textContent = personName(S.bot.id);
    $("#assistant-title").textContent = (thread && thread.title) || "";
    const context = $("#assistant-context");
    context.textContent =
      thread && thread.context_channel ? `Baton can see you are in ${contextLabel(thread.context_channel)}` : "";
    const replies = thread ? repliesOf(dm, S.assistant).filter((m) => !m.ephemeral_for || m.ephemeral_for === S.me) : [];
    const items = replies.map((m) => messageEl(m, { inThread: true }));
    if (!replies.length) {
      items.unshift(
        node("p", "assistant-welcome", thread ? "Ask Baton anything here; it sees which channel you are in." : "Opening…"),
      );
    }
    if (S.assistantNote) items.unshift(node("p", "assistant-note", S.assistantNote));
    redraw($("#assistant-messages"), items);
    drawPrompts(thread, replies);
    statusLine($("#assistant-status"), dm, S.assistant);
  }

  function contextLabel(channel) {
    const c = S.channels.find((ch) => ch.id === channel);
    if (!c) return channel;
    return c.is_im ? "your DM with " + personName(S.bot.id) : "#" + c.name;
  }

  // Suggested prompts show until the person says something after they were set.
  function drawPrompts(thread, replies) {
    const box = $("#assistant-prompts");
    const lastMine = replies.filter((m) => m.user === S.me).pop();
    const fresh = thread && thread.prompts.length && !(lastMine && Number(lastMine.ts) > Number(thread.prompts_at));
    if (!fresh) {
      box.replaceChildren();
      return;
    }
    const items = [];
    if (thread.prompts_title) items.push(node("div", "prompts-title", thread.prompts_title));
    for (const p of thread.prompts) {
      const b = node("button", "prompt", p.title);
      b.type = "button";
      b.dataset.prompt = p.message;
      b.title = p.message;
      items.push(b);
    }
    box.replaceChildren(...items);
  }

  function drawModal() {
    const dialog = $("#modal");
    const view = S.views[S.views.length - 1];
    if (!view) {
      S.modalKey = null;
      if (dialog.open) dialog.close();
      return;
    }
    const key = `${view.id}/${view.hash}`;
    if (key === S.modalKey && dialog.open) return; // keep what the person is typing
    S.modalKey = key;
    const form = node("form", "modal");
    form.dataset.viewId = view.id;
    const header = node("header", "modal-header");
    header.append(BlockKit.text(view.title, ctx));
    const x = node("button", "quiet modal-x", "✕");
    x.type = "button";
    x.dataset.closeView = view.id;
    header.append(x);
    const body = node("div", "modal-body");
    body.append(BlockKit.renderBlocks(view.blocks, { ctx }));
    const footer = node("footer", "modal-footer");
    const cancel = node("button", "secondary");
    cancel.type = "button";
    cancel.dataset.closeView = view.id;
    cancel.append(BlockKit.text(view.close || { type: "plain_text", text: "Cancel" }, ctx));
    footer.append(cancel);
    if (view.submit) {
      const submit = node("button", "primary");
      submit.type = "submit";
      submit.append(BlockKit.text(view.submit, ctx));
      footer.append(submit);
    }
    form.append(header, body, footer);
    dialog.replaceChildren(form);
    if (!dialog.open) dialog.showModal();
    const first = form.querySelector("input, textarea");
    if (first) first.focus();
  }

  function drawLog() {
    const pane = $("#log-pane");
    if (pane.hidden) return;
    const select = $("#fault-method");
    if (!select.options.length) {
      select.replaceChildren(
        ...(S.info.methods || []).map((m) => {
          const o = node("option", "", m);
          o.value = m;
          return o;
        }),
      );
      select.value = "chat.postMessage";
    }
    const list = $("#log");
    const open = new Set([...list.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    // Oldest first, the newest at the bottom, where the list stays unless scrolled up.
    const rows = S.calls.slice(-200).map((c) => {
      const li = node("li", c.ok ? "ok" : "failed");
      const details = node("details");
      details.dataset.key = `${c.at}/${c.method}`;
      details.open = open.has(details.dataset.key);
      const summary = node("summary");
      summary.append(
        node("time", "", time(c.at, { seconds: true })),
        node("code", "", c.method),
        node("span", "status", String(c.status)),
      );
      if (c.error) summary.append(node("span", "error", c.error));
      const body = node("div", "body");
      body.append(node("h4", "", "Slack answered"), node("pre", "response", c.response || ""));
      body.append(node("h4", "", "Baton sent"), node("pre", "args", c.args || ""));
      details.append(summary, body);
      li.append(details);
      return li;
    });
    redraw(list, rows);
  }

  // acting

  function values(root) {
    const out = {};
    for (const block of root.querySelectorAll(".bk-input")) {
      const input = block.querySelector("[data-action-id]");
      if (!input) continue;
      const blockId = block.dataset.blockId;
      out[blockId] = out[blockId] || {};
      out[blockId][input.dataset.actionId] = { type: input.dataset.elementType, value: input.value };
    }
    return out;
  }

  function showErrors(form, errors) {
    for (const block of form.querySelectorAll(".bk-input")) {
      const message = errors[block.dataset.blockId] || "";
      block.querySelector(".bk-input-error").textContent = message;
      block.classList.toggle("has-error", Boolean(message));
    }
  }

  function setMenu(open) {
    $("#app").classList.toggle("menu-open", open);
    $("#scrim").hidden = !open;
  }

  function openThread(ts) {
    S.thread = ts;
    S.assistantOpen = false;
    remember();
    drawNow();
    $("#thread-composer textarea").focus();
  }

  function openChannel(id) {
    if (id !== S.channel) S.thread = null;
    S.channel = id;
    S.tab = "messages";
    setMenu(false);
    remember();
    drawNow();
    tellContext();
  }

  function openHome() {
    S.tab = "home";
    S.home = null;
    drawNow();
    send("/api/home", {});
  }

  // The assistant container: a thread in the person's DM with Baton, opened beside the channel.
  async function openAssistant({ fresh = false, ts = null } = {}) {
    S.assistantOpen = true;
    S.assistantNote = "";
    if (ts) S.assistant = ts;
    if (fresh || !S.assistant) {
      S.assistant = null;
      drawNow();
      const answer = await send("/api/assistant/open", { context_channel: S.channel }, { quiet: true });
      if (answer.ts) S.assistant = answer.ts;
      if (!answer.ok) S.assistantNote = `Baton did not take ${answer.delivered || "the request"}: ${answer.detail}`;
    }
    remember();
    drawNow();
    $("#assistant-composer textarea").focus();
  }

  function closeAssistant() {
    S.assistantOpen = false;
    remember();
    drawNow();
  }

  // While the container is open, Baton hears which channel the person is looking at.
  async function tellContext() {
    if (!S.assistantOpen || !S.assistant) return;
    const answer = await send(
      "/api/assistant/context",
      { thread_ts: S.assistant, context_channel: S.channel },
      { quiet: true },
    );
    if (!answer.ok && answer.delivered) {
      S.assistantNote = `Baton did not take ${answer.delivered}: ${answer.detail}`;
      draw();
    }
  }

  async function post(form, { channel, threadTs, opensThread }) {
    const box = form.querySelector("textarea");
    const text = box.value;
    if (!text.trim()) return;
    box.value = "";
    await say(text, { channel, threadTs, opensThread });
  }

  async function say(text, { channel, threadTs, opensThread }) {
    const answer = await send("/api/messages", { channel, text, thread_ts: threadTs });
    // Baton answers in the message's thread: open it, as a person would.
    if (opensThread && answer.ok && answer.ts && answer.delivered) openThread(answer.ts);
  }

  // A permalink (the sandbox's own, or a slack.com one) opens here, at its message.
  function permalinkPlace(href) {
    let url;
    try {
      url = new URL(href, location.href);
    } catch (e) {
      return null;
    }
    const ours = url.host === location.host || /(^|\.)slack\.com$/.test(url.hostname);
    const match = /^\/archives\/([CDG][A-Z0-9]+)\/p(\d{10})(\d{6})$/.exec(url.pathname);
    if (!ours || !match) return null;
    const ts = `${match[2]}.${match[3]}`;
    return { channel: match[1], ts, thread: url.searchParams.get("thread_ts") };
  }

  function goTo(place) {
    if (!S.channels.some((c) => c.id === place.channel)) {
      toast("That message is in a conversation you cannot see.");
      return;
    }
    S.channel = place.channel;
    S.tab = "messages";
    S.assistantOpen = false;
    const root = place.thread || (repliesOf(place.channel, place.ts).length ? place.ts : null);
    S.thread = root;
    S.highlight = place.ts;
    remember();
    drawNow();
    showHighlight();
  }

  function showHighlight() {
    const target = document.querySelector(
      `#thread-messages .message[data-ts="${S.highlight}"], #messages .message[data-ts="${S.highlight}"]`,
    );
    if (!target) return;
    const list = target.closest(".message-list");
    list.dataset.stick = "false";
    target.scrollIntoView({ block: "center" });
    const shown = S.highlight;
    setTimeout(() => {
      if (S.highlight === shown) {
        S.highlight = null;
        draw();
      }
    }, 4000);
  }

  function wire() {
    for (const list of document.querySelectorAll(".message-list, #log")) follow(list);

    $("#identity").addEventListener("change", (event) => {
      const wasDm = (currentChannel() || {}).is_im;
      S.me = event.target.value;
      S.views = [];
      S.modalKey = null;
      S.assistant = null;
      S.assistantOpen = false;
      if (wasDm) {
        S.channel = null;
        S.thread = null;
      }
      remember();
      connect().then(() => {
        if (wasDm && myDm()) openChannel(myDm());
      });
    });

    document.addEventListener("click", async (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target) return;
      const link = target.closest("a[href]");
      if (link) {
        const place = permalinkPlace(link.getAttribute("href"));
        if (place) {
          event.preventDefault();
          return goTo(place);
        }
        return;
      }
      const channelLink = target.closest("[data-channel].channel-link");
      if (channelLink) return openChannel(channelLink.dataset.channel);
      const threadLink = target.closest("button[data-thread]");
      if (threadLink) return openThread(threadLink.dataset.thread);
      const assistantLink = target.closest("button[data-assistant-thread]");
      if (assistantLink) return openAssistant({ ts: assistantLink.dataset.assistantThread });
      const more = target.closest("button[data-expand]");
      if (more) {
        const key = more.dataset.expand;
        if (S.expanded.has(key)) S.expanded.delete(key);
        else S.expanded.add(key);
        return drawNow();
      }
      const prompt = target.closest("button[data-prompt]");
      if (prompt) return say(prompt.dataset.prompt, { channel: myDm(), threadTs: S.assistant });
      const tab = target.closest("#channel-tabs button");
      if (tab) return tab.dataset.tab === "home" ? openHome() : ((S.tab = "messages"), drawNow());
      const example = target.closest("button[data-example]");
      if (example) {
        const box = $("#composer textarea");
        box.value = example.dataset.append ? `${box.value} ${example.dataset.example}`.trim() : example.dataset.example;
        setMenu(false);
        box.focus();
        return;
      }
      const closer = target.closest("[data-close-view]");
      if (closer) {
        const form = closer.closest("form");
        return send("/api/views/close", { view_id: closer.dataset.closeView, values: values(form) });
      }
      const b = target.closest("button.bk-button, button.bk-feedback-button, button.bk-icon-button");
      if (b) return press(b);
    });

    $("#modal").addEventListener("cancel", (event) => {
      event.preventDefault();
      const form = $("#modal form");
      if (form) send("/api/views/close", { view_id: form.dataset.viewId, values: values(form) });
    });

    $("#modal").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      const answer = await send("/api/views/submit", { view_id: form.dataset.viewId, values: values(form) });
      showErrors(form, answer.errors || {});
    });

    const composers = [
      ["#composer", () => ({ channel: S.channel, threadTs: null, opensThread: true })],
      ["#thread-composer", () => ({ channel: S.channel, threadTs: S.thread, opensThread: false })],
      ["#assistant-composer", () => ({ channel: myDm(), threadTs: S.assistant, opensThread: false })],
    ];
    for (const [formSel, where] of composers) {
      const form = $(formSel);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        post(form, where());
      });
      form.querySelector("textarea").addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          post(form, where());
        }
      });
    }

    $("#thread-close").addEventListener("click", () => {
      S.thread = null;
      remember();
      drawNow();
    });
    $("#assistant-toggle").addEventListener("click", () => (S.assistantOpen ? closeAssistant() : openAssistant()));
    $("#assistant-close").addEventListener("click", closeAssistant);
    $("#assistant-new").addEventListener("click", () => openAssistant({ fresh: true }));
    $("#menu-toggle").addEventListener("click", () => setMenu(!$("#app").classList.contains("menu-open")));
    $("#scrim").addEventListener("click", () => setMenu(false));
    const toggleLog = () => {
      const pane = $("#log-pane");
      pane.hidden = !pane.hidden;
      // Reopened, the log shows its newest entry.
      $("#log").dataset.stick = "true";
      drawNow();
    };
    $("#log-toggle").addEventListener("click", toggleLog);
    $("#log-close").addEventListener("click", toggleLog);
    $("#fault-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const method = $("#fault-method").value;
      const answer = await send("/api/faults", { method, times: 1, retry_after: 1 });
      if (answer.ok) toast(`The next ${method} call gets HTTP 429 ratelimited (Retry-After: 1 s).`);
    });
    // Loading messages rotate while a status shows.
    setInterval(() => {
      if (S.statuses.size) draw();
    }, 3000);
  }

  // A click: the button spins until Baton has answered Slack, then shows a check, or what went
  // wrong beside it (as Slack shows an app that did not respond).
  async function press(b) {
    if (b.dataset.confirm) {
      const confirm = JSON.parse(b.dataset.confirm);
      const question = [confirm.title && confirm.title.text, confirm.text && confirm.text.text]
        .filter(Boolean)
        .join("\n\n");
      if (!window.confirm(question || "Are you sure?")) return;
    }
    if (b.dataset.url) window.open(b.dataset.url, "_blank", "noopener");
    const block = b.closest("[data-block-index]");
    const body = {
      action_id: b.dataset.actionId,
      block_index: block ? Number(block.dataset.blockIndex) : null,
    };
    if (b.dataset.feedback) body.feedback = b.dataset.feedback;
    const form = b.closest("form[data-view-id]");
    const onHome = !form && b.closest("#home");
    const message = form || onHome ? null : b.closest("[data-ts]");
    if (form) {
      body.view_id = form.dataset.viewId;
      body.values = values(form);
    } else if (onHome) {
      body.home = true;
    } else {
      if (!message) return;
      body.channel = message.dataset.channel;
      body.ts = message.dataset.ts;
    }
    if (message && b.dataset.feedback) {
      S.feedback.set(`${body.channel}/${body.ts}/${body.action_id}`, b.dataset.feedback);
      for (const other of b.parentElement.querySelectorAll(".bk-feedback-button")) {
        other.classList.toggle("selected", other === b);
      }
    }
    const row = b.closest(".bk-block") || b.parentElement;
    const old = row && row.querySelector(".bk-click-error");
    if (old) old.remove();
    b.disabled = true;
    b.classList.add("is-pending");
    const answer = await send("/api/actions", body, { quiet: true });
    b.disabled = false;
    b.classList.remove("is-pending");
    if (answer.ok) {
      b.classList.add("is-done");
      setTimeout(() => b.classList.remove("is-done"), 2000);
    } else if (row && row.isConnected) {
      row.append(node("div", "bk-click-error", `Baton didn't respond: ${answer.detail || "no answer"}`));
    } else {
      toast(answer.detail || "Baton didn't respond.");
    }
  }

  startFromAddress();
  wire();
  connect();
})();
