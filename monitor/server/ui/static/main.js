// Start-up: ask whether a token is needed, log in, wire the tabs.
"use strict";
(function () {
  let started = false;

  async function start() {
    let info;
    try {
      info = await SG.api("/ui/api/info");
    } catch (err) {
      if (err.status === 401) { SG.needLogin(SG.token() ? "the token was refused" : ""); return; }
      throw err;
    }
    SG.$("login").hidden = true;
    SG.$("app").hidden = false;
    SG.$("logout").hidden = !SG.token();
    SG.setText("whoami", info.model + " \u00b7 " + info.hook + " \u00b7 policy " + info.policy.name + " " + SG.short(info.policy.version));
    if (started) return;
    started = true;
    SG.tabs.chat.init(info);
    SG.tabs.alerts.init();
    SG.tabs.policies.init();
    SG.tabs.features.init();
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => SG.showTab(b.dataset.tab));
    const want = location.hash.slice(1);
    SG.showTab(["chat", "alerts", "policies", "features", "health"].includes(want) ? want : "chat");
  }

  SG.$("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(SG.TOKEN_KEY, SG.$("login-token").value.trim());
    SG.$("login-token").value = "";
    start().catch((err) => SG.setText("login-error", err.message));
  });
  SG.$("logout").addEventListener("click", () => {
    sessionStorage.removeItem(SG.TOKEN_KEY);
    location.reload();
  });
  start().catch((err) => SG.needLogin("cannot reach the daemon: " + err.message));
})();
