// Live chat: stream /v1/chat/completions (or score a transcript with /v1/score), shade each
// token by the chosen concept's score, mark interventions, explain a clicked token.
"use strict";
SG.tabs.chat = (function () {
  const state = { spans: [], offset: null, pending: {}, request: null, abort: null, selected: null };

  function actionClasses(actions) {
    const out = new Set();
    for (const a of actions || []) {
      if (a.startsWith("would")) out.add("act-would");
      else if (a.startsWith("clamp")) out.add("act-clamp");
      else if (a.startsWith("steer")) out.add("act-steer");
      else if (a === "stop" || a.startsWith("stop")) out.add("act-stop");
      else if (a.startsWith("alert")) out.add("act-alert");
    }
    return [...out];
  }

  function concept() { return SG.$("chat-concept").value; }

  function shade(span) {
    const r = span._report;
    if (!r) return;
    const s = r.scores ? r.scores[concept()] : undefined;
    if (typeof s === "number") {
      span.style.backgroundColor = "rgba(207, 34, 46, " + Math.min(1, Math.max(0, s)).toFixed(3) + ")";
      span.dataset.score = s.toFixed(4);
    }
  }

  function attach(span, report) {
    span._report = report;
    span.classList.add("scored");
    for (const c of actionClasses(report.actions)) span.classList.add(c);
    span.title = Object.entries(report.scores || {}).map(([k, v]) => k + " " + v.toFixed(3)).join("  ");
    shade(span);
  }

  function tokenSpan(text, extra) {
    const span = SG.el("span", { class: "tok" }, text);
    span.addEventListener("click", () => select(span));
    Object.assign(span, extra || {});
    return span;
  }

  function reset() {
    state.spans = []; state.offset = null; state.pending = {}; state.selected = null;
    SG.clear(SG.$("chat-output")); SG.clear(SG.$("chat-prompt-tokens")); SG.clear(SG.$("chat-alerts"));
    SG.$("token-panel").hidden = true;
  }

  function addAlerts(alerts, span) {
    for (const a of alerts || []) {
      SG.$("chat-alerts").appendChild(SG.el("li", {}, a.action + " " + (a.rule_id || a.kind) + " (" +
        (a.concept || "") + " " + SG.fmt(a.score) + ") at token ", SG.el("code", {}, a.token || "")));
      if (span) (span._alerts = span._alerts || []).push(a);
    }
  }

  // a chunk's reports: its own token is the one with the highest position
  function placeReports(reports, ownIndex) {
    const resp = (reports || []).filter((r) => r.scope === "response");
    if (!resp.length) return;
    if (state.offset === null && ownIndex !== null) {
      state.offset = Math.max(...resp.map((r) => r.position)) - ownIndex;
    }
    for (const r of resp) {
      const i = state.offset === null ? null : r.position - state.offset;
      if (i !== null && state.spans[i]) attach(state.spans[i], r);
      else state.pending[r.position] = r;
    }
  }

  function promptTokens(reports) {
    const box = SG.$("chat-prompt-tokens");
    for (const r of (reports || []).filter((x) => x.scope === "prompt")) {
      const span = tokenSpan(r.token, { _prompt: true });
      box.appendChild(span);
      attach(span, r);
    }
  }

  function messages() {
    const out = [];
    const sys = SG.$("chat-system").value;
    if (sys.trim()) out.push({ role: "system", content: sys });
    out.push({ role: "user", content: SG.$("chat-prompt").value });
    return out;
  }

  async function streamChat(msgs) {
    const body = { model: SG.$("chat-model").value || "default", stream: true, messages: msgs,
      max_tokens: Number(SG.$("chat-max").value) || 48, temperature: Number(SG.$("chat-temp").value) };
    state.request = { messages: msgs, transcript: false };
    state.abort = new AbortController();
    const resp = await fetch("/v1/chat/completions", { method: "POST", signal: state.abort.signal,
      headers: SG.headers({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
    if (resp.status === 401) SG.needLogin("the token was refused; log in again");
    if (!resp.ok) {
      const err = await resp.json().catch(() => ({}));
      throw new SG.ApiError(resp.status, err.error ? err.error.message : "HTTP " + resp.status);
    }
    SG.setText("chat-status", "streaming (policy version " + SG.short(resp.headers.get("x-saeguard-policy-version")) +
      ", request " + (resp.headers.get("x-request-id") || "") + ")");
    const out = SG.$("chat-output");
    let finish = null;
    await SG.readSSE(resp, (ev) => {
      if (ev.data === "[DONE]") return;
      const chunk = JSON.parse(ev.data);
      if (chunk.error) { SG.setText("chat-status", "error: " + chunk.error.message); return; }
      const choice = (chunk.choices || [])[0];
      if (!choice) return;
      const g = chunk.saeguard || {};
      const delta = choice.delta || {};
      if (delta.role) { promptTokens(g.tokens); addAlerts(g.alerts, null); return; }
      if (choice.finish_reason) {
        placeReports(g.tokens, null);
        finish = choice.finish_reason;
        if (delta.content) out.appendChild(SG.el("span", { class: "stop-msg" }, delta.content));
        addAlerts(g.alerts, state.spans[state.spans.length - 1]);
        return;
      }
      const span = tokenSpan(delta.content || "");
      out.appendChild(span);
      state.spans.push(span);
      placeReports(g.tokens, state.spans.length - 1);
      const held = state.offset === null ? undefined : state.pending[state.spans.length - 1 + state.offset];
      if (held && !span._report) attach(span, held);
      addAlerts(g.alerts, span);
    });
    SG.setText("chat-status", "done: finish_reason " + finish + ", " + state.spans.length + " tokens");
  }

  async function scoreTranscript(msgs) {
    msgs.push({ role: "assistant", content: SG.$("chat-assistant").value });
    state.request = { messages: msgs, transcript: true };
    const body = await SG.api("/v1/score", { method: "POST", json: { messages: msgs, include_prompt: true } });
    promptTokens(body.tokens);
    const out = SG.$("chat-output");
    for (const r of body.tokens.filter((t) => t.scope === "response")) {
      const span = tokenSpan(r.token, { _position: r.position });
      out.appendChild(span);
      state.spans.push(span);
      attach(span, r);
      addAlerts(body.alerts.filter((a) => a.token === r.token && a.token_index === r.token_index), span);
    }
    SG.setText("chat-status", "scored " + body.tokens.length + " tokens, " + body.alerts.length + " alert(s); " +
      "other actions the policy would take: " + (body.policy_would.join(", ") || "none") + " (" + body.interventions + ")");
  }

  async function send(e) {
    e.preventDefault();
    reset();
    SG.$("chat-send").disabled = true;
    SG.$("chat-stop").disabled = false;
    SG.setText("chat-status", "waiting for the model");
    try {
      if (SG.$("chat-mode").value === "score") await scoreTranscript(messages());
      else await streamChat(messages());
    } catch (err) {
      if (err.name !== "AbortError") SG.setText("chat-status", "error: " + err.message);
      else SG.setText("chat-status", "stopped by you after " + state.spans.length + " tokens");
    } finally {
      SG.$("chat-send").disabled = false;
      SG.$("chat-stop").disabled = true;
    }
  }

  async function select(span) {
    if (state.selected) state.selected.classList.remove("selected");
    state.selected = span;
    span.classList.add("selected");
    const r = span._report;
    const panel = SG.$("token-panel");
    panel.hidden = false;
    SG.setText("tp-token", span.textContent);
    SG.setText("tp-where", r ? r.scope + " position " + r.position : "not scored (special or sink-like token)");
    const table = SG.$("tp-scores");
    SG.clear(table);
    for (const [k, v] of Object.entries((r && r.scores) || {})) {
      const bar = SG.el("span", { class: "bar" });
      bar.style.width = Math.round(v * 120) + "px";  // CSSOM, allowed by the page's CSP
      table.appendChild(SG.el("tr", { dataset: { probe: k } }, SG.el("td", {}, k), SG.el("td", {}, v.toFixed(3)),
        SG.el("td", {}, bar)));
    }
    SG.setText("tp-fired", r && r.fired.length ? r.fired.join(", ") : "none");
    SG.setText("tp-actions", r && r.actions.length ? r.actions.join(", ") : "none");
    const feats = SG.$("tp-features");
    SG.clear(feats);
    if (!r || !state.request) return;
    SG.setText("tp-note", "computing ...");
    const req = { messages: state.request.messages, transcript: state.request.transcript };
    if (state.request.transcript || span._prompt) req.position = r.position;
    else {
      const idx = state.spans.indexOf(span);
      req.tokens = state.spans.slice(0, idx + 1).map((s) => (s._report ? s._report.token : s.textContent));
    }
    try {
      const ex = await SG.api("/ui/api/explain", { method: "POST", json: req });
      if (state.selected !== span) return;
      SG.setText("tp-note", "SAE at " + ex.hook + ", position " + ex.position + "; " + ex.note +
        (ex.exact_tokens ? "" : "; some tokens re-tokenised differently"));
      for (const [probe, list] of Object.entries(ex.probes)) {
        feats.appendChild(SG.el("h5", {}, probe + " (recomputed " + SG.fmt(ex.scores[probe]) + ")"));
        const ul = SG.el("ul", { class: "features", dataset: { probe: probe } });
        for (const f of list) {
          ul.appendChild(SG.el("li", {}, SG.featureLink(f.id, f.label), " act " + SG.fmt(f.activation, 2) +
            ", contribution " + SG.fmt(f.contribution, 3)));
        }
        if (!list.length) ul.appendChild(SG.el("li", { class: "muted" }, "no feature pushes this score up"));
        feats.appendChild(ul);
      }
      feats.appendChild(SG.el("h5", {}, "Most active features"));
      const top = SG.el("ul", { class: "features top" });
      for (const f of ex.top_features) top.appendChild(SG.el("li", {}, SG.featureLink(f.id, f.label), " act " + SG.fmt(f.activation, 2)));
      feats.appendChild(top);
    } catch (err) {
      SG.setText("tp-note", "could not explain: " + err.message);
    }
  }

  function init(info) {
    const c = SG.$("chat-concept");
    SG.clear(c);
    for (const p of info.probes) c.appendChild(SG.el("option", { value: p }, p));
    const m = SG.$("chat-model");
    SG.clear(m);
    m.appendChild(SG.el("option", { value: info.model }, info.model + " (pack " + info.pack + ")"));
    const pol = SG.$("chat-policy");
    SG.clear(pol);
    pol.appendChild(SG.el("option", { value: info.policy.name }, info.policy.name + " (" + info.policy.mode + ")"));
    c.addEventListener("change", () => document.querySelectorAll("#tab-chat .tok.scored").forEach(shade));
    SG.$("chat-form").addEventListener("submit", send);
    SG.$("chat-stop").addEventListener("click", () => state.abort && state.abort.abort());
    SG.$("chat-mode").addEventListener("change", () => {
      SG.$("chat-assistant").hidden = SG.$("chat-mode").value !== "score";
    });
  }

  return { init: init };
})();
