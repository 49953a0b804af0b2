// The sandbox page: a small Slack client for one person at a time, drawn from the Slack
// stand-in's state (GET /api/state) and kept live by its changes (WebSocket /ws). What the
// person does goes to the sandbox server, which delivers it to Baton as Slack would.
(function () {
  "use strict";

  const $ = (selector) => document.querySelector(selector);
  const SLACKBOT = "USLACKBOT";

  const S = {
    me: null,
    channel: null,
    thread: null,
    tab: "messages",
    seq: 0,
    team: null,
    bot: null,
    users: new Map(),
    channels: [],
    messages: new Map(), // channel id -> Map(ts -> message)
    views: [],
    home: null,
    statuses: new Map(), // "channel/thread_ts" -> status
    calls: [],
    info: {},
    socket: null,
    ready: false,
    early: [],
    modalKey: null,
    drawPending: false,
  };

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }

  // names

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

  const ctx = { user: personName, channel: channelName };

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
    S.statuses = new Map(state.statuses.map((s) => [`${s.channel}/${s.thread_ts}`, s.status]));
    S.calls = state.calls || [];
    S.info = state.info || {};
    if (!currentChannel()) S.channel = (S.channels.find((c) => !c.is_im) || {}).id;
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
        if (c.status) S.statuses.set(`${c.channel}/${c.thread_ts}`, c.status);
        else S.statuses.delete(`${c.channel}/${c.thread_ts}`);
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
    if (S.tab === "home") openHome();
  }

  async function send(path, body) {
    try {
      const response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ user: S.me }, body)),
      });
      const answer = await response.json();
      if (!answer.ok && answer.detail) toast(answer.detail);
      return answer;
    } catch (e) {
      toast("The sandbox is not reachable.");
      return { ok: false };
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
      const examples = [
        ...(S.info.playbooks || []).map((p) => ["@Baton run " + p.name, p.description]),
        [
          '/baton schedule add "every 1m" run shop-health alert=on_change',
          "a schedule: a digest now, then only when something changes",
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
    $("#model-info").textContent =
      `Model: ${model}${model === "rules" ? " (offline)" : ""} · ${S.info.catalog || "demo catalog"}`;
  }

  function time(ts) {
    const d = new Date(Number(ts) * 1000);
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
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

  function messageEl(m, { inThread }) {
    const el = node("article", "message");
    el.dataset.ts = m.ts;
    el.dataset.channel = m.channel;
    const fromApp = Boolean(m.bot_id) || m.user === SLACKBOT;
    if (fromApp) el.classList.add("from-app");
    if (m.ephemeral_for) el.classList.add("ephemeral");
    if (m.streaming) el.classList.add("streaming");

    const avatar = node("div", "avatar", fromApp && m.user !== SLACKBOT ? "B" : initials(m.user));
    avatar.style.background = m.user === SLACKBOT ? "#1264a3" : fromApp ? "#1f3b57" : avatarColor(m.user);
    const body = node("div", "message-body");
    const meta = node("div", "meta");
    meta.append(node("span", "author", personName(m.user)));
    if (fromApp) meta.append(node("span", "app-badge", "APP"));
    meta.append(node("time", "when", time(m.ts)));
    if (m.edited) meta.append(node("span", "edited", "(edited)"));
    body.append(meta);
    body.append(BlockKit.renderMessageContent(m, { ctx }));
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
      const open = node("button", replies.length ? "reply-count" : "reply-link");
      open.type = "button";
      open.dataset.thread = m.ts;
      open.textContent = replies.length
        ? `${replies.length} ${replies.length === 1 ? "reply" : "replies"} · last ${time(replies[replies.length - 1].ts)}`
        : "Reply in thread";
      body.append(open);
    }
    el.append(avatar, body);
    return el;
  }

  function redraw(list, elements) {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const scroll = list.scrollTop;
    list.replaceChildren(...elements);
    list.scrollTop = atBottom ? list.scrollHeight : scroll;
  }

  function intro() {
    const card = node("div", "intro");
    card.append(
      node("h3", "", "This is a local Slack workspace with Baton in it."),
      node(
        "p",
        "",
        "Ask with @Baton in a channel, /baton anywhere, or a DM to Baton. Switch who you are " +
          "on the left: Alice asks, Bob approves, Carol may not.",
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
    $("#composer textarea").placeholder = isDm
      ? "Message Baton"
      : `Message #${channel.name} — @Baton …, /baton …`;
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

  function drawThread() {
    const pane = $("#thread-pane");
    const root = S.thread && (S.messages.get(S.channel) || new Map()).get(S.thread);
    if (!root) {
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
    const status = S.statuses.get(`${S.channel}/${S.thread}`);
    $("#thread-status").textContent = status ? `${personName(S.bot.id)} ${status}` : "";
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
    const rows = S.calls.slice(-200).map((c) => {
      const li = node("li", c.ok ? "ok" : "failed");
      li.append(
        node("time", "", new Date(c.at * 1000).toLocaleTimeString()),
        node("code", "", c.method),
        node("span", "status", String(c.status)),
        node("span", "error", c.error || ""),
      );
      return li;
    });
    redraw($("#log"), rows.reverse());
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

  function openThread(ts) {
    S.thread = ts;
    remember();
    drawNow();
    $("#thread-composer textarea").focus();
  }

  function openChannel(id) {
    if (id !== S.channel) S.thread = null;
    S.channel = id;
    S.tab = "messages";
    remember();
    drawNow();
  }

  function openHome() {
    S.tab = "home";
    S.home = null;
    drawNow();
    send("/api/home", {});
  }

  async function post(form, threadTs) {
    const box = form.querySelector("textarea");
    const text = box.value;
    if (!text.trim()) return;
    box.value = "";
    const answer = await send("/api/messages", { channel: S.channel, text, thread_ts: threadTs });
    // Baton answers in the message's thread: open it, as a person would.
    if (answer.ok && answer.ts && !threadTs && answer.delivered) openThread(answer.ts);
  }

  function wire() {
    $("#identity").addEventListener("change", (event) => {
      const wasDm = (currentChannel() || {}).is_im;
      S.me = event.target.value;
      S.views = [];
      S.modalKey = null;
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
      const channelLink = target.closest("[data-channel].channel-link");
      if (channelLink) return openChannel(channelLink.dataset.channel);
      const threadLink = target.closest("button[data-thread]");
      if (threadLink) return openThread(threadLink.dataset.thread);
      const tab = target.closest("#channel-tabs button");
      if (tab) return tab.dataset.tab === "home" ? openHome() : ((S.tab = "messages"), drawNow());
      const example = target.closest("button[data-example]");
      if (example) {
        const box = $("#composer textarea");
        box.value = example.dataset.append ? `${box.value} ${example.dataset.example}`.trim() : example.dataset.example;
        box.focus();
        return;
      }
      const closer = target.closest("[data-close-view]");
      if (closer) {
        const form = closer.closest("form");
        return send("/api/views/close", { view_id: closer.dataset.closeView, values: values(form) });
      }
      const b = target.closest("button.bk-button");
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

    for (const [formSel, thread] of [["#composer", false], ["#thread-composer", true]]) {
      const form = $(formSel);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        post(form, thread ? S.thread : null);
      });
      form.querySelector("textarea").addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          post(form, thread ? S.thread : null);
        }
      });
    }

    $("#thread-close").addEventListener("click", () => {
      S.thread = null;
      remember();
      drawNow();
    });
    const toggleLog = () => {
      $("#log-pane").hidden = !$("#log-pane").hidden;
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
  }

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
    const form = b.closest("form[data-view-id]");
    if (form) {
      body.view_id = form.dataset.viewId;
      body.values = values(form);
    } else {
      const message = b.closest("[data-ts]");
      if (!message) return;
      body.channel = message.dataset.channel;
      body.ts = message.dataset.ts;
    }
    b.disabled = true;
    try {
      await send("/api/actions", body);
    } finally {
      b.disabled = false;
    }
  }

  startFromAddress();
  wire();
  connect();
})();
