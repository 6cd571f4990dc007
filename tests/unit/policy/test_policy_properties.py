"""Property tests (hypothesis): the engine agrees with a direct reading of the documented
semantics for windows, thresholds, runs, firing edges, cooldown, any/all and durations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.policy import RequestContext
from tests.unit.policy.toys import PROBES, compile_rules

SETTINGS = settings(max_examples=120, deadline=None)
score_lists = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40)
thresholds = st.sampled_from([0.0, 0.25, 0.5, 0.5000001, 0.75, 1.0]) | st.floats(0.0, 1.0)


def _scores(**kw: float) -> dict[str, float]:
    base = dict.fromkeys(PROBES, 0.0)
    base.update(kw)
    return base


def _pooled(seq: list[float], i: int, w: int, reduce: str) -> float:
    win = seq[max(0, i - w + 1) : i + 1]
    return max(win) if reduce == "max" else sum(win) / len(win)


def _truth(seq: list[float], w: int, reduce: str, t: float, k: int) -> list[bool]:
    out, run = [], 0
    for i in range(len(seq)):
        run = run + 1 if _pooled(seq, i, w, reduce) >= t else 0
        out.append(run >= k)
    return out


def _fires(truth: list[bool], cooldown: int) -> list[int]:
    """Documented rule: fire when true, armed and not cooling; re-arm when false."""
    fires, armed, until = [], True, 0
    for i, value in enumerate(truth):
        if not value:
            armed = True
        elif armed and i >= until:
            fires.append(i)
            armed = False
            until = i + 1 + cooldown
    return fires


def _run(policy, rows, scopes=None):
    mon = policy.new_request("p", RequestContext())
    return [
        mon.step(row, i, "x", scopes[i] if scopes else "response") for i, row in enumerate(rows)
    ]


@SETTINGS
@given(
    seq=score_lists,
    w=st.integers(1, 6),
    reduce=st.sampled_from(["mean", "max"]),
    t=thresholds,
    k=st.integers(1, 4),
    cooldown=st.integers(0, 5),
)
def test_single_condition_matches_reference(seq, w, reduce, t, k, cooldown):
    policy = compile_rules(
        f"""
        - id: r
          when:
            probe: deception
            threshold: {t!r}
            window: {{tokens: {w}, reduce: {reduce}}}
            min_consecutive: {k}
          then: [{{alert: {{severity: low}}}}]
          cooldown_tokens: {cooldown}
        """
    )
    results = _run(policy, [_scores(deception=s) for s in seq])
    got = [i for i, r in enumerate(results) if r.fired]
    assert got == _fires(_truth(seq, w, reduce, t, k), cooldown)
    for i in got:  # the alert carries the pooled score that passed the threshold
        (alert,) = results[i].alerts
        assert alert.score == _pooled(seq, i, w, reduce) and alert.score >= t


@SETTINGS
@given(seq=score_lists)
def test_without_cooldown_fires_exactly_on_rising_edges(seq):
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5}
          then: [{alert: {severity: low}}]
        """
    )
    got = [i for i, r in enumerate(_run(policy, [_scores(deception=s) for s in seq])) if r.fired]
    high = [s >= 0.5 for s in seq]
    assert got == [i for i, h in enumerate(high) if h and (i == 0 or not high[i - 1])]


@SETTINGS
@given(
    pairs=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30),
    t1=thresholds,
    t2=thresholds,
    op=st.sampled_from(["any", "all"]),
)
def test_any_all_combine_leaves_at_the_same_position(pairs, t1, t2, op):
    policy = compile_rules(
        f"""
        - id: r
          when:
            {op}:
              - {{probe: deception, threshold: {t1!r}}}
              - {{probe: bias, threshold: {t2!r}}}
          then: [{{alert: {{severity: low}}}}]
        """
    )
    rows = [_scores(deception=a, bias=b) for a, b in pairs]
    combine = any if op == "any" else all
    truth = [combine((a >= t1, b >= t2)) for a, b in pairs]
    got = [i for i, r in enumerate(_run(policy, rows)) if r.fired]
    assert got == _fires(truth, 0)


@SETTINGS
@given(
    events=st.lists(
        st.tuples(st.booleans(), st.sampled_from(["prompt", "response"])), min_size=1, max_size=40
    ),
    n=st.integers(1, 6),
)
def test_clamp_duration(events, n):
    policy = compile_rules(
        f"""
        - id: r
          when: {{probe: deception, threshold: 0.5, scope: both}}
          then: [{{clamp: {{features: [9], value: 0.0, tokens: {n}}}}}]
        """
    )
    rows = [_scores(deception=1.0 if hot else 0.0) for hot, _ in events]
    scopes = [sc for _, sc in events]
    results = _run(policy, rows, scopes)
    fires = [i for i, r in enumerate(results) if r.fired]

    def covered(f: int) -> set[int]:
        out, remaining, p = {f}, n - 1, f + 1
        while remaining > 0 and p < len(events):
            out.add(p)
            if scopes[p] == "response":
                remaining -= 1
            p += 1
        return out

    for p, result in enumerate(results):
        latest = max((f for f in fires if f <= p), default=None)
        expect = latest is not None and p in covered(latest)
        assert bool(result.clamps) == expect, (p, fires)


@SETTINGS
@given(seq=score_lists, n=st.integers(1, 5))
def test_shadow_fires_like_enforce_but_never_intervenes(seq, n):
    rules = f"""
        - id: r
          when: {{probe: deception, threshold: 0.5, window: {{tokens: 2}}}}
          then:
            - clamp: {{top_k: 2, tokens: {n}}}
            - stop: {{message: bye}}
        """
    rows = [_scores(deception=s) for s in seq]
    enforce = _run(compile_rules(rules), rows)
    shadow = _run(compile_rules(rules, mode="shadow"), rows)
    assert [r.fired for r in shadow] == [r.fired for r in enforce]
    assert not any(r.intervenes for r in shadow)
    assert all(a.action in ("would_clamp", "would_stop") for r in shadow for a in r.alerts)
