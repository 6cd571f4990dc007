// Alerts: live feed of the Redis stream through /ui/api/alerts/stream. The feed remembers
// the last stream id it saw and sends it (Last-Event-ID) whenever it connects again, so a
// dropped or restarted connection skips nothing; alert ids already shown are not repeated.
"use strict";
SG.tabs.alerts = (function () {
  const state = { lastId: "", seen: new Set(), abort: null, paused: false, count: 0, unread: 0, retry: null };
  const filters = { concept: "filter-concept", rule: "filter-rule", action: "filter-action" };

  function setFeed(text) { SG.setText("feed-state", text); }

  function addOption(selectId, value) {
    if (!value) return;
    const sel = SG.$(selectId);
    for (const o of sel.options) if (o.value === value) return;
    sel.appendChild(SG.el("option", { value: value }, value));
  }

  function matches(row) {
    return Object.entries(filters).every(([key, id]) => !SG.$(id).value || row.dataset[key] === SG.$(id).value);
  }

  function applyFilters() {
    for (const row of SG.$("alert-table").tBodies[0].rows) row.hidden = !matches(row);
  }

  function detail(a) {
    const box = SG.$("alert-detail");
    SG.clear(box);
    box.hidden = false;
    const dl = SG.el("table", { class: "kv" });
    const rows = [["rule", a.rule_id || a.kind], ["action", a.action], ["severity", a.severity],
      ["concept / probe", (a.concept || "") + " / " + (a.probe || "")],
      ["score / threshold", SG.fmt(a.score) + " / " + SG.fmt(a.threshold)],
      ["token", a.token], ["token index", a.token_index], ["request id", a.request_id],
      ["policy", a.policy_name + " " + (a.mode || "")], ["policy version", a.policy_version],
      ["model / hook", (a.model || "") + " " + (a.hook || "")], ["time", a.ts ? new Date(a.ts * 1000).toISOString() : ""],
      ["alert id", a.alert_id], ["stream id", a.stream_id]];
    for (const [k, v] of rows) dl.appendChild(SG.el("tr", {}, SG.el("td", {}, k), SG.el("td", { class: "v-" + k.split(" ")[0] }, v === null || v === undefined ? "" : v)));
    box.appendChild(SG.el("h3", {}, "Alert evidence"));
    box.appendChild(dl);
    if (a.excerpt) {
      box.appendChild(SG.el("h4", {}, "Text the monitor had seen"));
      box.appendChild(SG.el("pre", { class: "example excerpt" }, a.excerpt));
    }
    box.appendChild(SG.el("h4", {}, "Features"));
    const ul = SG.el("ul", { class: "features" });
    for (const f of a.features || []) ul.appendChild(SG.el("li", {}, SG.featureLink(f.id, f.label), " act " + SG.fmt(f.activation, 2)));
    if (!(a.features || []).length) ul.appendChild(SG.el("li", { class: "muted" }, "none recorded"));
    box.appendChild(ul);
    if (a.detail) box.appendChild(SG.el("pre", { class: "example" }, a.detail));
  }

  function add(a) {
    if (state.seen.has(a.alert_id)) return;
    state.seen.add(a.alert_id);
    state.count += 1;
    const row = SG.el("tr", { dataset: { alertId: a.alert_id, streamId: a.stream_id, concept: a.concept || "",
      rule: a.rule_id || a.kind, action: a.action || "" }, onclick: () => detail(a) },
    SG.el("td", {}, SG.time(a.ts)), SG.el("td", {}, a.rule_id || a.kind), SG.el("td", {}, a.concept),
    SG.el("td", {}, a.action), SG.el("td", {}, a.severity), SG.el("td", {}, SG.fmt(a.score)),
    SG.el("td", { class: "token" }, a.token), SG.el("td", {}, SG.short(a.request_id, 16)));
    addOption(filters.concept, a.concept);
    addOption(filters.rule, a.rule_id || a.kind);
    addOption(filters.action, a.action);
    row.hidden = !matches(row);
    const body = SG.$("alert-table").tBodies[0];
    body.insertBefore(row, body.firstChild);
    SG.setText("feed-count", state.count);
    if (SG.current !== "alerts") { state.unread += 1; SG.setText("alert-badge", state.unread); }
  }

  async function connect() {
    clearTimeout(state.retry);
    if (state.abort || state.paused) return;
    const abort = new AbortController();
    state.abort = abort;
    setFeed("connecting");
    const url = "/ui/api/alerts/stream" + (state.lastId ? "?last_id=" + encodeURIComponent(state.lastId) : "");
    const headers = state.lastId ? { "Last-Event-ID": state.lastId } : {};
    try {
      const resp = await fetch(url, { headers: SG.headers(headers), signal: abort.signal });
      if (resp.status === 401) { SG.needLogin("the token was refused; log in again"); return; }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      setFeed("live");
      await SG.readSSE(resp, (ev) => {
        if (ev.event === "status") {
          const s = JSON.parse(ev.data);
          SG.setText("feed-redis", s.redis ? "connected" : "unreachable: " + s.error);
        } else if (ev.event === "alert") {
          add(JSON.parse(ev.data));
          if (ev.id) { state.lastId = ev.id; SG.setText("feed-last-id", ev.id); }
        }
      });
      setFeed("ended");
    } catch (err) {
      setFeed(err.name === "AbortError" ? "disconnected" : "error: " + err.message);
    } finally {
      if (state.abort === abort) state.abort = null;
      if (!state.paused) state.retry = setTimeout(connect, 1000);
    }
  }

  function disconnect() {
    state.paused = true;
    if (state.abort) state.abort.abort();
    SG.setText("feed-toggle", "Reconnect");
    setFeed("disconnected");
  }

  function toggle() {
    if (state.paused) {
      state.paused = false;
      SG.setText("feed-toggle", "Disconnect");
      connect();
    } else disconnect();
  }

  function init() {
    for (const id of Object.values(filters)) SG.$(id).addEventListener("change", applyFilters);
    SG.$("feed-toggle").addEventListener("click", toggle);
    connect();
  }

  function onShow() { state.unread = 0; SG.setText("alert-badge", ""); }

  return { init: init, onShow: onShow, disconnect: disconnect, state: state };
})();
