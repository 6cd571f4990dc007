// Policies: the policy in force, an editor that validates (file:line: field: message)
// before anything is applied, and the reload history.
"use strict";
SG.tabs.policies = (function () {
  let fileText = "";

  function showIssues(list, cls) {
    const ul = SG.$("policy-issues");
    SG.clear(ul);
    for (const i of list || []) ul.appendChild(SG.el("li", { class: cls || "" }, i.text));
  }

  function result(text, ok) {
    const span = SG.$("policy-result");
    span.textContent = text;
    span.className = ok ? "ok" : "error";
  }

  async function load(keepEditor) {
    const p = await SG.api("/ui/api/policy");
    SG.setText("pol-name", p.policy.name);
    SG.setText("pol-mode", p.policy.mode + ", " + p.policy.on_monitor_error);
    SG.setText("pol-version", p.policy.version);
    SG.setText("pol-path", p.policy.path);
    SG.setText("pol-last-error", p.last_reload_error ? "The last reload was rejected (version " +
      SG.short(p.last_reload_error.attempted_version) + "):\n" + p.last_reload_error.issues.map((i) => i.text).join("\n") : "");
    const rules = SG.$("pol-rules");
    SG.clear(rules);
    rules.appendChild(SG.el("tr", {}, ["rule", "probes", "scopes", "actions", "severity", "cooldown"].map((h) => SG.el("th", {}, h))));
    for (const r of p.policy.rules) {
      rules.appendChild(SG.el("tr", {}, SG.el("td", {}, r.id), SG.el("td", {}, r.probes.join(", ")),
        SG.el("td", {}, r.scopes.join(", ")), SG.el("td", {}, r.actions.join(", ")), SG.el("td", {}, r.severity),
        SG.el("td", {}, r.cooldown_tokens)));
    }
    fileText = p.text;
    if (!keepEditor) SG.$("policy-text").value = p.text;
    SG.$("policy-apply").disabled = !p.can_apply;
    if (!p.can_apply) SG.$("policy-apply").title = "needs an auth token configured on the server";
    const h = SG.$("pol-history");
    SG.clear(h);
    h.appendChild(SG.el("tr", {}, ["time", "outcome", "version serving", "attempted", "why"].map((x) => SG.el("th", {}, x))));
    for (const e of p.history) {
      h.appendChild(SG.el("tr", { class: e.outcome === "rejected" ? "error" : "" }, SG.el("td", {}, SG.time(e.ts)),
        SG.el("td", {}, e.outcome), SG.el("td", {}, SG.short(e.version)), SG.el("td", {}, SG.short(e.attempted_version)),
        SG.el("td", {}, e.issues.concat(e.warnings).join("\n"))));
    }
    if (!p.history.length) h.appendChild(SG.el("tr", {}, SG.el("td", { colspan: 5, class: "muted" }, "no reloads since start")));
  }

  async function validate() {
    result("validating ...", true);
    const r = await SG.api("/ui/api/policy/validate", { method: "POST", json: { text: SG.$("policy-text").value } });
    showIssues(r.ok ? r.warnings : r.issues, r.ok ? "muted" : "");
    result(r.ok ? "valid (version " + SG.short(r.version) + ")" + (r.warnings.length ? " with warnings" : "")
      : r.issues.length + " problem(s); nothing applied", r.ok);
  }

  async function apply() {
    result("applying ...", true);
    const r = await SG.api("/ui/api/policy/apply", { method: "POST", json: { text: SG.$("policy-text").value },
      allowError: true, withStatus: true });
    const b = r.body;
    if (r.status === 200) {
      showIssues(b.warnings, "muted");
      result(b.changed ? "applied: version " + SG.short(b.version) + " is serving" : "unchanged: version " + SG.short(b.version), true);
      await load(false);
    } else {
      showIssues(b.issues || [], "");
      result(b.error ? b.error.message : "HTTP " + r.status, false);
      await load(true);
    }
  }

  function init() {
    SG.$("policy-validate").addEventListener("click", () => validate().catch((e) => result(e.message, false)));
    SG.$("policy-apply").addEventListener("click", () => apply().catch((e) => result(e.message, false)));
    SG.$("policy-revert").addEventListener("click", () => { SG.$("policy-text").value = fileText; showIssues([]); result("", true); });
  }

  return { init: init, onShow: () => load(SG.$("policy-text").value !== fileText).catch((e) => result(e.message, false)) };
})();
