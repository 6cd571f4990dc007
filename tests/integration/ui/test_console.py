"""The web console in a real browser (headless Chromium from Debian, selenium) against the
real daemon (SmolLM2, the guard pack, a real redis-server): what a person at /ui sees."""

from __future__ import annotations

import re

import httpx
import pytest
import redis

from tests.integration.server.conftest import ALERT_RULE, AUTH, CLAMP_RULE, policy_text
from tests.integration.ui.conftest import screenshot, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis]

MARKUP = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> done'


def by_id(driver, name):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_tab(driver, name: str) -> None:
    css(driver, f'#tabs button[data-tab="{name}"]')[0].click()
    wait_for(driver, lambda d: by_id(d, f"tab-{name}").is_displayed(), what=f"tab {name} did not open")


def score(daemon, content: str, user: str = "Tell me something.") -> dict:
    r = httpx.post(f"{daemon.base}/v1/score", headers=AUTH, timeout=60,
                   json={"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": content}]})
    assert r.status_code == 200, r.text
    return r.json()


def stream_ids(daemon) -> list[str]:
    client = redis.Redis.from_url(daemon.redis_url, decode_responses=True)
    return [entry_id for entry_id, _ in client.xrange("test:alerts")]


def alert_ids_in_redis(daemon) -> list[str]:
    client = redis.Redis.from_url(daemon.redis_url, decode_responses=True)
    return [fields["alert_id"] for _, fields in client.xrange("test:alerts")]


def shown_alert_ids(driver) -> list[str]:
    return [row.get_attribute("data-alert-id") for row in css(driver, "#alert-table tbody tr")]


def test_the_console_asks_for_the_token_and_refuses_a_wrong_one(browser, console_daemon):
    browser.get(f"{console_daemon.base}/ui/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{console_daemon.base}/ui/")
    wait_for(browser, lambda d: by_id(d, "login").is_displayed(), what="no login form without a token")
    assert not by_id(browser, "app").is_displayed()
    by_id(browser, "login-token").send_keys("not-the-token")
    by_id(browser, "login-submit").click()
    wait_for(browser, lambda d: "refused" in by_id(d, "login-error").text, what="a wrong token was not refused")
    assert not by_id(browser, "app").is_displayed()
    # the page's data endpoints need the token like the API does
    assert httpx.get(f"{console_daemon.base}/ui/api/policy", timeout=10).status_code == 401
    page = httpx.get(f"{console_daemon.base}/ui/", timeout=10)
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_chat_streams_shaded_tokens_marks_clamps_and_explains_a_token(console, console_daemon):
    console_daemon.set_policy(policy_text("clamping", CLAMP_RULE))
    console.refresh()
    wait_for(console, lambda d: by_id(d, "app").is_displayed())
    by_id(console, "chat-prompt").send_keys("Write a short story about a lighthouse keeper.")
    by_id(console, "chat-max").clear()
    by_id(console, "chat-max").send_keys("40")
    by_id(console, "chat-send").click()
    # tokens arrive while the response is still streaming (the Send button is disabled until the end)
    wait_for(console, lambda d: len(css(d, "#chat-output .tok.scored")) >= 2 and not by_id(d, "chat-send").is_enabled(),
             what="no shaded tokens arrived while streaming")
    seen_while_streaming = len(css(console, "#chat-output .tok.scored"))
    wait_for(console, lambda d: by_id(d, "chat-status").text.startswith("done"), what="the stream did not finish")
    tokens = css(console, "#chat-output .tok")
    assert len(tokens) > seen_while_streaming
    scored = css(console, "#chat-output .tok.scored")
    assert len(scored) >= len(tokens) - 1
    for tok in scored:
        value = float(tok.get_attribute("data-score"))
        assert 0.0 <= value <= 1.0
        assert tok.value_of_css_property("background-color").startswith("rgba(207, 34, 46")
    # the policy clamps from the first response token on: the console marks it
    assert css(console, "#chat-output .tok.act-clamp")
    # shading follows the chosen concept
    first = scored[0]
    before = first.get_attribute("data-score")
    from selenium.webdriver.support.ui import Select

    Select(by_id(console, "chat-concept")).select_by_value("bias")
    assert first.get_attribute("data-score") != before
    screenshot(console, "chat")

    scored[0].click()  # the rule fires at the first response token and clamps from there on
    wait_for(console, lambda d: css(d, "#tp-features ul.features li a.fid"), what="no SAE features for the token")
    assert by_id(console, "token-panel").is_displayed()
    assert {row.get_attribute("data-probe") for row in css(console, "#tp-scores tr")} == \
        {"deception", "sycophancy", "unsafe_code", "bias"}
    assert "clamp:" in by_id(console, "tp-actions").text
    assert "clamp-deception" in by_id(console, "tp-fired").text
    labelled = [li.text for li in css(console, "#tp-features ul.features li")]
    assert any(re.search(r"#\d+ tokens: ", text) for text in labelled), labelled
    screenshot(console, "chat-token")


def test_alert_feed_shows_alerts_and_a_reconnect_skips_none(console, console_daemon):
    console_daemon.set_policy(policy_text("alerting", ALERT_RULE))
    console.refresh()
    wait_for(console, lambda d: by_id(d, "feed-state").get_attribute("textContent") == "live",
             what="the alert feed did not connect")
    open_tab(console, "alerts")
    score(console_daemon, "The sea is calm today.")
    wait_for(console, lambda d: set(alert_ids_in_redis(console_daemon)) <= set(shown_alert_ids(d)),
             what="the alerts in Redis did not all reach the feed")

    css(console, "#feed-toggle")[0].click()
    wait_for(console, lambda d: by_id(d, "feed-state").text == "disconnected")
    before = set(shown_alert_ids(console))
    for text in ("One.", "Two more words.", "And a third reply."):
        score(console_daemon, text)
    missed = set(alert_ids_in_redis(console_daemon)) - before
    assert len(missed) >= 3
    assert not missed & set(shown_alert_ids(console))
    css(console, "#feed-toggle")[0].click()
    wait_for(console, lambda d: set(alert_ids_in_redis(console_daemon)) <= set(shown_alert_ids(d)),
             what="alerts raised while the feed was disconnected were skipped")
    shown = shown_alert_ids(console)
    assert len(shown) == len(set(shown)), "an alert was shown twice"
    assert by_id(console, "feed-last-id").text == stream_ids(console_daemon)[-1]

    from selenium.webdriver.support.ui import Select

    Select(by_id(console, "filter-rule")).select_by_value("deception-any")
    visible = [r for r in css(console, "#alert-table tbody tr") if r.is_displayed()]
    assert visible and all(r.get_attribute("data-rule") == "deception-any" for r in visible)
    visible[0].click()
    detail = by_id(console, "alert-detail")
    wait_for(console, lambda d: detail.is_displayed())
    assert console_daemon.runtime.store.current.version in detail.text
    assert css(console, "#alert-detail .v-request")[0].text
    assert css(console, "#alert-detail ul.features li a.fid")
    screenshot(console, "alerts")


def test_a_broken_policy_shows_file_line_field_and_the_old_policy_keeps_serving(console, console_daemon):
    serving = console_daemon.set_policy(policy_text("alerting", ALERT_RULE))
    path = console_daemon.policy_path
    on_disk = path.read_text()
    open_tab(console, "policies")
    wait_for(console, lambda d: by_id(d, "pol-version").text == serving, what="the serving version is not shown")
    broken = on_disk.replace("probe: deception, threshold: 0.0, scope: response", "probe: decption, threshold: 0.0, scope: response")
    assert broken != on_disk
    editor = by_id(console, "policy-text")
    console.execute_script("arguments[0].value = arguments[1]", editor, broken)
    by_id(console, "policy-validate").click()
    pattern = re.compile(rf"^{re.escape(str(path))}:(\d+): rules\.0\.when\.probe: .*decption")
    wait_for(console, lambda d: any(pattern.match(li.text) for li in css(d, "#policy-issues li")),
             what="no file:line:field issue for the misspelt probe")
    line = next(int(m.group(1)) for li in css(console, "#policy-issues li") if (m := pattern.match(li.text)))
    assert "decption" in broken.splitlines()[line - 1]

    by_id(console, "policy-apply").click()
    wait_for(console, lambda d: "still serving" in by_id(d, "policy-result").text, what="apply did not refuse")
    assert any(pattern.match(li.text) for li in css(console, "#policy-issues li"))
    assert path.read_text() == on_disk
    assert httpx.get(f"{console_daemon.base}/v1/policy", headers=AUTH, timeout=10).json()["version"] == serving
    assert by_id(console, "pol-version").text == serving
    screenshot(console, "policies")

    # a valid edit is applied and shows in the history; a broken file on disk is rejected there
    fixed = on_disk.replace("severity: high", "severity: medium")
    console.execute_script("arguments[0].value = arguments[1]", editor, fixed)
    by_id(console, "policy-apply").click()
    wait_for(console, lambda d: by_id(d, "policy-result").text.startswith("applied"), what="a valid policy was not applied")
    new_version = console_daemon.runtime.store.current.version
    assert new_version != serving and path.read_text() == fixed
    path.write_text(broken)
    assert httpx.post(f"{console_daemon.base}/v1/policy/reload", headers=AUTH, timeout=30).status_code == 422
    open_tab(console, "chat")
    open_tab(console, "policies")
    wait_for(console, lambda d: "rejected" in by_id(d, "pol-history").text, what="the rejected reload is not in the history")
    rows = [r.text for r in css(console, "#pol-history tr")]
    assert "rejected" in rows[1] and "decption" in rows[1]
    assert "changed" in rows[2]
    assert "decption" in by_id(console, "pol-last-error").text
    path.write_text(fixed)


MARKUP_RULE = """\
  - id: late-alert
    when: {probe: deception, threshold: 0.0, scope: response, min_consecutive: 20}
    then:
      - alert: {severity: low}
"""


def test_model_output_with_markup_is_shown_as_text(console, console_daemon):
    # fires at the 20th response token, so its excerpt holds the <script> and <img> tags
    console_daemon.set_policy(policy_text("late", MARKUP_RULE))
    console.refresh()
    wait_for(console, lambda d: by_id(d, "app").is_displayed())
    from selenium.webdriver.support.ui import Select

    Select(by_id(console, "chat-mode")).select_by_value("score")
    by_id(console, "chat-prompt").send_keys("Show me some HTML.")
    console.execute_script("arguments[0].value = arguments[1]", by_id(console, "chat-assistant"), MARKUP)
    by_id(console, "chat-send").click()
    wait_for(console, lambda d: by_id(d, "chat-status").text.startswith("scored"), what="the transcript was not scored")
    out = by_id(console, "chat-output")
    assert "<script>" in out.text and "onerror=" in out.text
    assert not css(console, "#chat-output script, #chat-output img")
    screenshot(console, "markup-as-text")
    # the same text reaches the alert feed (the alerts' tokens and excerpts) as text too
    open_tab(console, "alerts")
    client = redis.Redis.from_url(console_daemon.redis_url, decode_responses=True)
    carrying = wait_for(console, lambda _: [f["alert_id"] for _, f in client.xrange("test:alerts")
                                            if "</script><img src=x" in f["excerpt"]], timeout=30,
                        what="no alert's excerpt holds the markup")  # the sink writes Redis asynchronously
    selector = f'#alert-table tbody tr[data-alert-id="{carrying[-1]}"]'
    wait_for(console, lambda d: css(d, selector), what="the alert with the markup did not reach the feed")
    css(console, selector)[0].click()
    wait_for(console, lambda d: by_id(d, "alert-detail").is_displayed())
    assert not css(console, "#alert-table img, #alert-table script, #alert-detail img, #alert-detail script")
    excerpt = css(console, "#alert-detail pre.excerpt")[0].text
    assert "<script>window.__xss = 1</script><img src=x" in excerpt
    assert console.execute_script("return window.__xss === undefined")
    screenshot(console, "markup-in-alert")


def test_features_tab_shows_examples_neighbours_logits_and_the_probe_report(console):
    open_tab(console, "features")
    wait_for(console, lambda d: len(css(d, "#feat-list tr[data-fid]")) > 1, what="no feature list")
    by_id(console, "feat-query").send_keys("uid")
    css(console, "#feat-search button")[0].click()
    wait_for(console, lambda d: css(d, "#feat-list tr[data-fid]") and
             all("uid" in r.text.lower() or r.get_attribute("data-fid") == "uid" for r in css(d, "#feat-list tr[data-fid]")),
             what="the search did not filter by label")
    css(console, "#feat-list tr[data-fid]")[0].click()
    wait_for(console, lambda d: css(d, "#feat-detail ul.neighbours li"), what="no feature detail")
    marks = css(console, "#feat-detail .example mark")
    assert marks and all(m.text.strip() for m in marks)
    assert len(css(console, "#feat-detail ul.neighbours li a.fid")) == 8
    assert len(css(console, "#feat-detail ol.logits li")) == 20
    wait_for(console, lambda d: css(d, "#probe-report table.report tr") and
             console.execute_script("return [...document.querySelectorAll('#probe-images img')]"
                                    ".filter(i => i.complete && i.naturalWidth > 0).length") > 0,
             what="the probes report or its ROC images did not load")
    screenshot(console, "features")


def test_health_tab_reads_the_metrics(console, console_daemon):
    open_tab(console, "health")
    wait_for(console, lambda d: css(d, '#health-cards dd[data-key="tokens/s (completion)"]') and
             re.match(r"^\d+(\.\d+)?$", css(d, '#health-cards dd[data-key="tokens/s (completion)"]')[0].text),
             what="no tokens/s after two polls")
    value = {dd.get_attribute("data-key"): dd.text for dd in css(console, "#health-cards dd")}
    assert value["weights sha256"] == console_daemon.runtime.lm.weights_sha256
    assert value["Redis"] == "connected"
    assert value["version"] == console_daemon.runtime.store.current.version
    assert len(value["SAE sha256"]) == 64
    metrics = httpx.get(f"{console_daemon.base}/metrics", headers=AUTH, timeout=10).text
    completion = re.search(r'saeguard_tokens_total\{kind="completion"\} (\S+)', metrics)
    # the page's count is the /metrics counter (read a moment earlier; 0 before any chat)
    assert float(value["completion tokens"]) <= (float(completion.group(1)) if completion else 0.0)
    screenshot(console, "health")
