/* Parlay web chat widget. No dependencies. Embed:
 *   <script>window.ParlayWebchat = {userId: "...", email: "...", signature: "..."};</script>  (optional)
 *   <script src="https://<gateway>/webchat/widget.js" data-account="<channel_account_id>" async></script>
 * Protocol: docs/channels.md ("Web chat"). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__parlayWebchatLoaded) return;
  window.__parlayWebchatLoaded = true;
  var cfg = window.ParlayWebchat || {};
  var account = script.getAttribute("data-account") || cfg.account;
  if (!account) { console.error("parlay webchat: data-account is required"); return; }
  var base = new URL(script.src, location.href);
  var socketUrl = (base.protocol === "https:" ? "wss:" : "ws:") + "//" + base.host +
    "/webchat/" + encodeURIComponent(account) + "/socket";
  var title = script.getAttribute("data-title") || cfg.title || "Chat with us";
  var FATAL = {4400: 1, 4401: 1, 4403: 1, 4404: 1};

  function randomId(bytes) {
    var a = new Uint8Array(bytes), s = "";
    (window.crypto || window.msCrypto).getRandomValues(a);
    for (var i = 0; i < a.length; i++) s += ("0" + a[i].toString(16)).slice(-2);
    return s;
  }
  function stored(key, make) {
    var v = null;
    try { v = localStorage.getItem(key); } catch (e) { /* storage blocked */ }
    if (!v && make) { v = make(); try { localStorage.setItem(key, v); } catch (e) { /* ignore */ } }
    return v;
  }
  var visitorId = stored("parlay_webchat_visitor:" + account, function () { return randomId(16); });

  // ---------------------------------------------------------------- DOM
  var css = "#parlay-webchat{position:fixed;right:20px;bottom:20px;z-index:2147483000;" +
    "font:14px/1.4 system-ui,sans-serif}" +
    "#parlay-webchat .pw-launcher{border:0;border-radius:24px;padding:12px 18px;background:#2d6cdf;" +
    "color:#fff;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25)}" +
    "#parlay-webchat .pw-panel{display:none;flex-direction:column;width:320px;height:420px;" +
    "background:#fff;border-radius:10px;box-shadow:0 4px 18px rgba(0,0,0,.3);overflow:hidden}" +
    "#parlay-webchat.pw-open .pw-panel{display:flex}#parlay-webchat.pw-open .pw-launcher{display:none}" +
    "#parlay-webchat .pw-head{background:#2d6cdf;color:#fff;padding:10px;display:flex;justify-content:space-between}" +
    "#parlay-webchat .pw-close{background:none;border:0;color:#fff;cursor:pointer;font-size:16px}" +
    "#parlay-webchat .pw-log{flex:1;overflow-y:auto;padding:8px;background:#f5f6f8}" +
    "#parlay-webchat .pw-msg{max-width:80%;margin:4px 0;padding:6px 10px;border-radius:12px;" +
    "white-space:pre-wrap;word-wrap:break-word;clear:both}" +
    "#parlay-webchat .pw-in{float:right;background:#2d6cdf;color:#fff}" +
    "#parlay-webchat .pw-out{float:left;background:#e4e6eb;color:#111}" +
    "#parlay-webchat .pw-pending{opacity:.6}" +
    "#parlay-webchat .pw-typing,#parlay-webchat .pw-status{clear:both;color:#666;font-size:12px;padding:2px 8px}" +
    "#parlay-webchat form{display:flex;border-top:1px solid #ddd}" +
    "#parlay-webchat .pw-input{flex:1;border:0;padding:10px;font:inherit}" +
    "#parlay-webchat .pw-send{border:0;background:#2d6cdf;color:#fff;padding:0 14px;cursor:pointer}";
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  var root = el("div"); root.id = "parlay-webchat";
  var launcher = el("button", "pw-launcher", title); launcher.type = "button";
  var panel = el("div", "pw-panel");
  var head = el("div", "pw-head"); head.appendChild(el("span", "", title));
  var closeBtn = el("button", "pw-close", "\u00d7"); closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", "Close chat"); head.appendChild(closeBtn);
  var log = el("div", "pw-log"); log.setAttribute("aria-live", "polite");
  var typing = el("div", "pw-typing", ""); typing.style.display = "none";
  var status = el("div", "pw-status", "");
  var form = el("form");
  var input = el("input", "pw-input"); input.placeholder = "Type a message\u2026";
  input.setAttribute("aria-label", "Message"); input.maxLength = 4096;
  var send = el("button", "pw-send", "Send"); send.type = "submit";
  form.appendChild(input); form.appendChild(send);
  panel.appendChild(head); panel.appendChild(log); panel.appendChild(typing);
  panel.appendChild(status); panel.appendChild(form);
  root.appendChild(launcher); root.appendChild(panel);
  (document.body || document.documentElement).appendChild(root);

  // ---------------------------------------------------------------- state
  var ws = null, ready = false, retryMs = 500, fatal = false, typingTimer = null, lastTyping = 0;
  var rendered = {};   // "in:<id>" / "out:<id>" -> element
  var pending = {};    // client id -> text, until acked
  var pendingOrder = [];
  var deliveredKey = "parlay_webchat_delivered:" + account;
  var delivered = (stored(deliveredKey) || "").split(",").filter(Boolean);

  function scroll() { log.scrollTop = log.scrollHeight; }
  function render(direction, id, text, isPending) {
    var key = direction + ":" + id, node = rendered[key];
    if (!node) {
      node = el("div", "pw-msg pw-" + direction, text);
      node.setAttribute("data-id", id);
      rendered[key] = node;
      log.appendChild(node);
    }
    node.classList.toggle("pw-pending", !!isPending);
    scroll();
    return node;
  }
  function frame(obj) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }
  function markDelivered(id) {
    if (delivered.indexOf(id) >= 0) return;
    if (frame({type: "delivered", id: id})) {
      delivered.push(id);
      if (delivered.length > 200) delivered = delivered.slice(-200);
      try { localStorage.setItem(deliveredKey, delivered.join(",")); } catch (e) { /* ignore */ }
    }
  }
  function showTyping(on) {
    clearTimeout(typingTimer);
    typing.textContent = on ? "Agent is typing\u2026" : "";
    typing.style.display = on ? "block" : "none";
    if (on) typingTimer = setTimeout(function () { showTyping(false); }, 10000);
  }
  function onMessage(m) {
    var text = m.text || "";
    if (m.media_url) text = text + (text ? "\n" : "") + m.media_url;
    if (m.options && m.options.length) text = text + "\n\u2022 " + m.options.join("\n\u2022 ");
    if (m.direction === "in") {
      delete pending[m.id];
      render("in", m.id, text, false);
    } else {
      showTyping(false);
      render("out", m.id, text, false);
      markDelivered(m.id);
    }
  }
  function flushPending() {
    pendingOrder = pendingOrder.filter(function (id) { return pending[id] != null; });
    pendingOrder.forEach(function (id) { frame({type: "message", id: id, text: pending[id]}); });
  }

  // ---------------------------------------------------------------- socket
  function connect() {
    if (fatal) return;
    ready = false;
    try { ws = new WebSocket(socketUrl); } catch (e) { return schedule(); }
    ws.onopen = function () {
      var hello = {type: "hello", visitor_id: visitorId};
      if (cfg.userId) { hello.user_id = String(cfg.userId); hello.email = cfg.email || ""; hello.signature = cfg.signature || ""; }
      if (cfg.name) hello.name = String(cfg.name);
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (ev) {
      var m; try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "ready") {
        ready = true; retryMs = 500; status.textContent = "";
        (m.history || []).forEach(onMessage);
        flushPending();
      } else if (m.type === "message") {
        onMessage(m);
      } else if (m.type === "ack") {
        if (pending[m.id] != null) { render("in", m.id, pending[m.id], false); delete pending[m.id]; }
      } else if (m.type === "typing") {
        showTyping(!!m.state);
      } else if (m.type === "error") {
        if (m.code === "unavailable" && m.id && pending[m.id] != null) {
          setTimeout(function () { frame({type: "message", id: m.id, text: pending[m.id]}); }, 1000);
        } else if (m.message) {
          status.textContent = m.message;
        }
      }
    };
    ws.onclose = function (ev) {
      ready = false;
      if (FATAL[ev.code]) { fatal = true; status.textContent = "Chat unavailable (" + (ev.reason || ev.code) + ")"; return; }
      status.textContent = "Reconnecting\u2026";
      schedule();
    };
  }
  function schedule() {
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  }

  // ---------------------------------------------------------------- UI events
  function open() { root.classList.add("pw-open"); input.focus(); }
  launcher.addEventListener("click", open);
  closeBtn.addEventListener("click", function () { root.classList.remove("pw-open"); });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    var id = randomId(12);
    pending[id] = text;
    pendingOrder.push(id);
    render("in", id, text, true);
    if (ready) frame({type: "message", id: id, text: text});
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (ready && now - lastTyping > 3000) { lastTyping = now; frame({type: "typing", state: true}); }
  });
  window.ParlayWebchat = cfg;
  cfg.open = open;
  if (script.getAttribute("data-open") === "true") open();
  connect();
})();
