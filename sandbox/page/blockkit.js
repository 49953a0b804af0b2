// Block Kit, drawn as Slack draws it: header, section (text, fields, accessory), context,
// divider, actions (buttons, primary/danger), context_actions (feedback buttons, icon
// buttons), image, input, rich_text, markdown; a streamed
// message's plan and task list; legacy attachments. A block or element this page does not
// know is shown as a visible placeholder naming its type, never silently dropped.
(function () {
  "use strict";

  const M = window.Mrkdwn;

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }

  // A text object: {type: "plain_text" | "mrkdwn", text}.
  function text(obj, ctx) {
    if (obj === undefined || obj === null) return node("span");
    if (typeof obj === "string") return node("span", "plain-text", obj);
    if (obj.type === "mrkdwn") return M.render(obj.text, ctx);
    const shown = obj.emoji === false ? obj.text : M.emoji(String(obj.text ?? ""));
    return node("span", "plain-text", shown);
  }

  function placeholder(kind, type) {
    const el = node("div", "bk-unknown", `Unsupported ${kind}: ${type || "(no type)"}`);
    el.dataset.type = type || "";
    return el;
  }

  function image(el, className) {
    const img = node("img", className);
    img.src = el.image_url || el.url || "";
    img.alt = el.alt_text || "";
    img.loading = "lazy";
    return img;
  }

  function button(el, ctx) {
    const b = node("button", "bk-button");
    b.type = "button";
    if (el.style === "primary" || el.style === "danger") b.classList.add("bk-" + el.style);
    b.append(text(el.text, ctx));
    b.dataset.actionId = el.action_id || "";
    if (el.value !== undefined) b.dataset.value = el.value;
    if (el.url) b.dataset.url = el.url;
    if (el.confirm) b.dataset.confirm = JSON.stringify(el.confirm);
    return b;
  }

  function textInput(el) {
    const input = node(el.multiline ? "textarea" : "input", "bk-text-input");
    if (!el.multiline) input.type = "text";
    input.dataset.actionId = el.action_id || "";
    input.dataset.elementType = "plain_text_input";
    if (el.placeholder) input.placeholder = el.placeholder.text || "";
    if (el.initial_value) input.value = el.initial_value;
    if (el.max_length) input.maxLength = el.max_length;
    if (el.focus_on_load) input.autofocus = true;
    return input;
  }

  // A pair of thumbs under an answer: each half is pressed on its own (data-feedback).
  function feedbackButtons(el, ctx) {
    const pair = node("span", "bk-feedback");
    for (const side of ["positive", "negative"]) {
      const half = el[`${side}_button`] || {};
      const b = node("button", "bk-feedback-button");
      b.type = "button";
      b.dataset.actionId = el.action_id || "";
      b.dataset.feedback = side;
      if (half.value !== undefined) b.dataset.value = half.value;
      b.append(text(half.text || { type: "plain_text", text: side === "positive" ? "👍" : "👎" }, ctx));
      if (half.accessibility_label) b.setAttribute("aria-label", half.accessibility_label);
      pair.append(b);
    }
    return pair;
  }

  const ICONS = { trash: "🗑", copy: "⧉", edit: "✎" };

  function iconButton(el, ctx) {
    const b = node("button", "bk-icon-button");
    b.type = "button";
    b.dataset.actionId = el.action_id || "";
    if (el.value !== undefined) b.dataset.value = el.value;
    b.title = (el.text && el.text.text) || el.icon || "";
    b.append(ICONS[el.icon] || "•");
    return b;
  }

  function element(el, ctx) {
    switch (el && el.type) {
      case "button":
        return button(el, ctx);
      case "image":
        return image(el, "bk-element-image");
      case "plain_text_input":
        return textInput(el);
      default:
        return placeholder("element", el && el.type);
    }
  }

  // rich_text: what people's messages carry.
  function richInline(el, ctx) {
    const style = el.style || {};
    let out;
    switch (el.type) {
      case "text":
        out = document.createTextNode(el.text || "");
        break;
      case "link": {
        out = node("a", "", el.text || el.url);
        if (/^(https?:|mailto:)/i.test(el.url || "")) out.href = el.url;
        out.target = "_blank";
        out.rel = "noopener noreferrer";
        break;
      }
      case "user":
        out = node("span", "mention", "@" + ctx.user(el.user_id));
        break;
      case "usergroup":
        out = node("span", "mention", "@" + el.usergroup_id);
        break;
      case "channel":
        out = node("span", "mention channel-mention", "#" + ctx.channel(el.channel_id));
        break;
      case "broadcast":
        out = node("span", "mention", "@" + el.range);
        break;
      case "emoji":
        out = document.createTextNode(
          el.unicode
            ? String.fromCodePoint(...el.unicode.split("-").map((h) => parseInt(h, 16)))
            : M.emoji(`:${el.name}:`),
        );
        break;
      case "date":
        out = node("time", "date", M.formatDate(el.timestamp, el.format || "{date}", ctx.tz) || el.fallback);
        break;
      default:
        return placeholder("element", el.type);
    }
    const wrap = [["code", "code"], ["strike", "s"], ["italic", "i"], ["bold", "b"]];
    for (const [key, tag] of wrap) {
      if (style[key]) {
        const w = node(tag);
        w.append(out);
        out = w;
      }
    }
    return out;
  }

  function richPart(part, ctx) {
    const inlineAll = (into) => {
      for (const el of part.elements || []) into.append(richInline(el, ctx));
      return into;
    };
    switch (part.type) {
      case "rich_text_section":
        return inlineAll(node("div", "rt-section"));
      case "rich_text_quote":
        return inlineAll(node("blockquote", "rt-quote"));
      case "rich_text_preformatted":
        return inlineAll(node("pre", "code-block"));
      case "rich_text_list": {
        const list = node(part.style === "ordered" ? "ol" : "ul", "rt-list");
        list.style.marginLeft = `${(part.indent || 0) * 1.5}em`;
        for (const item of part.elements || []) {
          const li = node("li");
          li.append(richPart(item, ctx));
          list.append(li);
        }
        return list;
      }
      default:
        return placeholder("element", part.type);
    }
  }

  // The `markdown` block takes standard Markdown; draw it through mrkdwn.
  function markdownToMrkdwn(source) {
    return String(source || "")
      .replace(/\*\*(.+?)\*\*/g, "*$1*")
      .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, "<$2|$1>")
      .replace(/^#{1,6}\s+(.*)$/gm, "*$1*")
      .replace(/^\s*[-*]\s+/gm, "• ");
  }

  const BLOCKS = {
    header(b, ctx) {
      const h = node("div", "bk-header");
      h.append(text(b.text, ctx));
      return h;
    },
    section(b, ctx) {
      const s = node("div", "bk-section");
      const main = node("div", "bk-section-main");
      if (b.text) main.append(text(b.text, ctx));
      if (b.fields && b.fields.length) {
        const fields = node("div", "bk-fields");
        for (const f of b.fields) {
          const cell = node("div", "bk-field");
          cell.append(text(f, ctx));
          fields.append(cell);
        }
        main.append(fields);
      }
      s.append(main);
      if (b.accessory) {
        const acc = node("div", "bk-accessory");
        acc.append(element(b.accessory, ctx));
        s.append(acc);
      }
      return s;
    },
    context(b, ctx) {
      const c = node("div", "bk-context");
      for (const el of b.elements || []) {
        if (el.type === "image") c.append(image(el, "bk-context-image"));
        else if (el.type === "mrkdwn" || el.type === "plain_text") c.append(text(el, ctx));
        else c.append(placeholder("element", el.type));
      }
      return c;
    },
    divider() {
      return node("hr", "bk-divider");
    },
    actions(b, ctx) {
      const a = node("div", "bk-actions");
      for (const el of b.elements || []) a.append(element(el, ctx));
      return a;
    },
    context_actions(b, ctx) {
      const a = node("div", "bk-context-actions");
      for (const el of b.elements || []) {
        if (el && el.type === "feedback_buttons") a.append(feedbackButtons(el, ctx));
        else if (el && el.type === "icon_button") a.append(iconButton(el, ctx));
        else a.append(placeholder("element", el && el.type));
      }
      return a;
    },
    image(b, ctx) {
      const f = node("figure", "bk-image");
      if (b.title) {
        const cap = node("figcaption");
        cap.append(text(b.title, ctx));
        f.append(cap);
      }
      f.append(image(b, ""));
      return f;
    },
    input(b, ctx) {
      const wrap = node("label", "bk-input");
      const label = node("span", "bk-input-label");
      label.append(text(b.label, ctx));
      if (b.optional) label.append(node("span", "bk-optional", " (optional)"));
      wrap.append(label, element(b.element, ctx));
      if (b.hint) {
        const hint = node("span", "bk-hint");
        hint.append(text(b.hint, ctx));
        wrap.append(hint);
      }
      wrap.append(node("span", "bk-input-error"));
      return wrap;
    },
    rich_text(b, ctx) {
      const r = node("div", "bk-rich-text");
      for (const part of b.elements || []) r.append(richPart(part, ctx));
      return r;
    },
    markdown(b, ctx) {
      const m = node("div", "bk-markdown");
      m.append(M.render(markdownToMrkdwn(b.text), ctx));
      return m;
    },
  };

  function renderBlocks(blocks, options) {
    const ctx = Object.assign({ user: (id) => id, channel: (id) => id, tz: null }, (options || {}).ctx);
    const root = node("div", "bk-blocks");
    (blocks || []).forEach((b, i) => {
      const draw = b && Object.prototype.hasOwnProperty.call(BLOCKS, b.type) ? BLOCKS[b.type] : null;
      const el = draw ? draw(b, ctx) : placeholder("block", b && b.type);
      el.classList.add("bk-block");
      el.dataset.blockIndex = String(i);
      el.dataset.blockId = (b && b.block_id) || `b${i}`;
      root.append(el);
    });
    return root;
  }

  const TASK_ICON = { pending: "○", in_progress: "◌", complete: "✓", error: "✕" };

  // chat.startStream / appendStream chunks as the stand-in folds them: a plan title, tasks
  // merged by id (pending → in_progress → complete | error), markdown text, blocks.
  function renderStream(msg, ctx) {
    const root = node("div", "bk-stream");
    root.dataset.streaming = String(Boolean(msg.streaming));
    const tasks = msg.tasks || [];
    if (msg.plan_title || tasks.length) {
      const plan = node("div", "bk-plan");
      plan.dataset.mode = msg.task_display_mode || "plan";
      if (msg.plan_title) plan.append(node("div", "bk-plan-title", msg.plan_title));
      const list = node("ol", "bk-tasks");
      for (const t of tasks) {
        const status = t.status || "pending";
        const li = node("li", "bk-task");
        li.dataset.status = status;
        li.dataset.taskId = t.id;
        li.append(node("span", "bk-task-icon", TASK_ICON[status] || "•"));
        const body = node("div", "bk-task-body");
        body.append(node("div", "bk-task-title", t.title || t.id));
        if (t.details) body.append(node("div", "bk-task-details", t.details));
        if (t.output) {
          const out = node("div", "bk-task-output");
          out.append(M.render(t.output, ctx));
          body.append(out);
        }
        if (Array.isArray(t.sources) && t.sources.length) {
          const sources = node("div", "bk-task-sources");
          for (const source of t.sources) {
            const url = (source && source.url) || "";
            const a = node("a", "", (source && source.text) || url);
            if (/^https?:/i.test(url)) a.href = url;
            a.target = "_blank";
            a.rel = "noopener noreferrer";
            sources.append(a);
          }
          body.append(sources);
        }
        li.append(body);
        list.append(li);
      }
      plan.append(list);
      root.append(plan);
    }
    if (msg.text) {
      const t = node("div", "bk-stream-text");
      t.append(M.render(msg.text, ctx));
      root.append(t);
    }
    if (msg.blocks && msg.blocks.length) root.append(renderBlocks(msg.blocks, { ctx }));
    if (msg.streaming) root.append(node("div", "bk-streaming", "Baton is writing…"));
    if (msg.stream_expired) root.append(node("div", "bk-stream-ended", "(stream ended)"));
    return root;
  }

  function renderAttachments(attachments, ctx) {
    const root = node("div", "bk-attachments");
    for (const a of attachments || []) {
      const box = node("div", "bk-attachment");
      if (a.color) box.style.borderLeftColor = /^[0-9a-f]{6}$/i.test(a.color) ? "#" + a.color : a.color;
      if (a.pretext) box.append(M.render(a.pretext, ctx));
      if (a.title) box.append(node("div", "bk-attachment-title", a.title));
      if (a.text) box.append(M.render(a.text, ctx));
      for (const f of a.fields || []) {
        const field = node("div", "bk-field");
        field.append(node("b", "", f.title || ""), M.render(f.value || "", ctx));
        box.append(field);
      }
      if (a.blocks) box.append(renderBlocks(a.blocks, { ctx }));
      if (a.footer) box.append(node("div", "bk-context", a.footer));
      root.append(box);
    }
    return root;
  }

  function isStream(msg) {
    return Boolean(
      msg.streaming || msg.stream_expired || msg.plan_title || msg.task_display_mode ||
        (msg.tasks && msg.tasks.length),
    );
  }

  // What a message shows: its stream, else its blocks (the text is then only a fallback
  // for notifications), else its text; attachments after.
  function renderMessageContent(msg, options) {
    const ctx = Object.assign({ user: (id) => id, channel: (id) => id, tz: null }, (options || {}).ctx);
    const root = node("div", "message-content");
    if (isStream(msg)) root.append(renderStream(msg, ctx));
    else if (msg.blocks && msg.blocks.length) root.append(renderBlocks(msg.blocks, { ctx }));
    else root.append(M.render(msg.text || "", ctx));
    if (msg.attachments && msg.attachments.length) root.append(renderAttachments(msg.attachments, ctx));
    return root;
  }

  window.BlockKit = { renderBlocks, renderStream, renderMessageContent, text };
  window.renderBlocks = renderBlocks;
  window.renderMessageContent = renderMessageContent;
})();
