// Health: /readyz, /metrics (the same numbers Prometheus scrapes) and /ui/api/health
// (hashes, alert latency), polled every 2 s while the tab is open.
"use strict";
SG.tabs.health = (function () {
  let timer = null;
  let prev = null;

  // Prometheus text -> {"name{labels}": value}
  function parseMetrics(text) {
    const out = {};
    for (const line of text.split("\n")) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (m) out[m[1] + (m[2] || "")] = Number(m[3]);
    }
    return out;
  }
  function sum(metrics, prefix) {
    let s = 0;
    for (const [k, v] of Object.entries(metrics)) if (k === prefix || k.startsWith(prefix + "{")) s += v;
    return s;
  }

  function card(title, rows) {
    const dl = SG.el("dl", {});
    for (const [k, v] of rows) {
      dl.appendChild(SG.el("dt", {}, k));
      dl.appendChild(SG.el("dd", { dataset: { key: k } }, v === undefined || v === null ? "" : v));
    }
    return SG.el("div", { class: "panel" }, SG.el("h3", {}, title), dl);
  }

  async function poll() {
    const [ready, metricsText, h] = await Promise.all([
      SG.api("/readyz", { allowError: true }), SG.api("/metrics"), SG.api("/ui/api/health")]);
    const m = parseMetrics(metricsText);
    const now = performance.now() / 1000;
    const completion = m['saeguard_tokens_total{kind="completion"}'] || 0;
    let rate = "measuring ...";
    if (prev) rate = ((completion - prev.completion) / Math.max(1e-3, now - prev.t)).toFixed(1);
    prev = { t: now, completion: completion };
    const lat = h.alert_latency || {};
    const cards = SG.$("health-cards");
    SG.clear(cards);
    cards.appendChild(card("Status", [["ready", ready.ready ? "yes" : "no" + (ready.reason ? ": " + ready.reason : "")],
      ["worker", ready.worker ? ready.worker.scheduler : ""], ["draining", ready.worker ? String(ready.worker.draining) : ""]]));
    cards.appendChild(card("Model", [["id", h.model.id], ["spec", h.model.spec], ["device", ready.model ? ready.model.device : ""],
      ["weights sha256", h.model.weights_sha256]]));
    cards.appendChild(card("Guard pack", [["dir", h.pack.dir], ["hook", h.pack.hook],
      ["SAE features", ready.pack ? ready.pack.d_sae : ""], ["probes", ready.pack ? ready.pack.probes.join(", ") : ""],
      ["SAE sha256", h.pack.sae_sha256], ["probes sha256", h.pack.probes_sha256]]));
    cards.appendChild(card("Policy", [["name", h.policy.name], ["mode", h.policy.mode], ["version", h.policy.version],
      ["reloads", sum(m, "saeguard_policy_reloads_total")], ["rejected reloads", sum(m, "saeguard_policy_reload_errors_total")]]));
    cards.appendChild(card("Traffic", [["tokens/s (completion)", rate], ["completion tokens", completion],
      ["prompt tokens", m['saeguard_tokens_total{kind="prompt"}'] || 0],
      ["in flight", m.saeguard_in_flight_requests], ["worker queue depth", m.saeguard_worker_queue_depth],
      ["batch active", m.saeguard_batch_active], ["requests", sum(m, "saeguard_requests_total")]]));
    cards.appendChild(card("Alerts and Redis", [["Redis", m.saeguard_redis_connected === 1 ? "connected" : "not connected"],
      ["alert queue depth", m.saeguard_alert_queue_depth], ["spooled on disk", m.saeguard_alert_spooled],
      ["alerts raised", sum(m, "saeguard_alerts_total")],
      ["alert latency p50 / p95 / max", lat.n ? lat.p50_ms + " / " + lat.p95_ms + " / " + lat.max_ms + " ms (last " + lat.n + ")" : (lat.error || "no alerts yet")],
      ["stream", h.redis.stream]]));
  }

  function onShow() {
    if (timer) return;
    const tick = () => {
      if (SG.current !== "health") { clearInterval(timer); timer = null; return; }
      poll().catch((e) => { SG.clear(SG.$("health-cards")); SG.$("health-cards").appendChild(SG.el("p", { class: "error" }, e.message)); });
    };
    timer = setInterval(tick, 2000);
    tick();
  }

  return { onShow: onShow };
})();
