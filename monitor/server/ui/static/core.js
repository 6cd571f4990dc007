// saeguard console: shared helpers. Model and user text only ever goes in with
// textContent / createTextNode (el() below); nothing is parsed as HTML.
"use strict";
const SG = {};

SG.TOKEN_KEY = "saeguard-token";
SG.token = () => sessionStorage.getItem(SG.TOKEN_KEY) || "";

SG.headers = function (extra) {
  const h = Object.assign({}, extra || {});
  const t = SG.token();
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
};

class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}
SG.ApiError = ApiError;

// fetch + JSON; a 401 sends the page back to the login form
SG.api = async function (path, opts) {
  opts = opts || {};
  const init = { method: opts.method || "GET", headers: SG.headers(opts.headers), signal: opts.signal };
  if (opts.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.json);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) SG.needLogin("the token was refused; log in again");
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok && !opts.allowError) {
    const msg = body && body.error ? body.error.message : String(body);
    throw new ApiError(resp.status, msg, body);
  }
  return opts.withStatus ? { status: resp.status, body: body } : body;
};

// el("td", {class: "x", dataset: {id: 3}, onclick: f}, "text", child, ...)
SG.el = function (tag, attrs) {
  const node = document.createElement(tag);
  const a = attrs || {};
  for (const k of Object.keys(a)) {
    const v = a[k];
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "hidden" || k === "disabled") node[k] = !!v;
    else node.setAttribute(k, String(v));
  }
  for (let i = 2; i < arguments.length; i++) SG.append(node, arguments[i]);
  return node;
};
SG.append = function (node, child) {
  if (child === undefined || child === null || child === false) return;
  if (Array.isArray(child)) { child.forEach((c) => SG.append(node, c)); return; }
  node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
};
SG.clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); };
SG.$ = (id) => document.getElementById(id);
SG.setText = (id, text) => { SG.$(id).textContent = text === undefined || text === null ? "" : String(text); };
SG.short = (hex, n) => (hex ? String(hex).slice(0, n || 12) : "");
SG.fmt = (x, d) => (typeof x === "number" ? x.toFixed(d === undefined ? 3 : d) : (x === null || x === undefined ? "" : String(x)));
SG.time = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "");

// Server-sent events over fetch (so the request can carry the Authorization header and
// Last-Event-ID). onEvent({event, id, data}); resolves when the stream ends.
SG.readSSE = async function (resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const ev = { event: "message", id: null, data: [] };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "data") ev.data.push(val);
        else if (field === "event") ev.event = val;
        else if (field === "id") ev.id = val;
      }
      if (ev.data.length || ev.id !== null) onEvent({ event: ev.event, id: ev.id, data: ev.data.join("\n") });
    }
  }
};

// tabs
SG.tabs = {};
SG.showTab = function (name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + name;
  SG.current = name;
  const mod = SG.tabs[name];
  if (mod && mod.onShow) mod.onShow();
};

SG.needLogin = function (why) {
  SG.$("app").hidden = true;
  SG.$("login").hidden = false;
  SG.setText("login-error", why || "");
};

// feature ids link to the Features tab
SG.featureLink = function (fid, label) {
  return SG.el("span", {}, SG.el("a", { class: "fid", dataset: { fid: String(fid) },
    onclick: () => { SG.showTab("features"); SG.tabs.features.open(fid); } }, "#" + fid),
  label ? " " + label : "");
};
