"""Requests the HTTP fuzzer (ops/bench/fuzz.py) found answered with a 500, kept as
regressions on the toy app: each now gets a 4xx that says what was wrong."""

from __future__ import annotations

import json

import pytest

from tests.unit.server.test_app_toy import AUTH, app_env, call  # noqa: F401  (app_env is a fixture)

TRANSCRIPT = [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "ab"}]


@pytest.mark.parametrize("rid", ["caf\u00e9\u2713", "\U000fa4b6", "a\nb", "tab\there", " lead"])
def test_score_request_id_that_cannot_be_a_header_is_a_422(app_env, rid):  # noqa: F811
    app, _, writer = app_env
    r = call(app, "POST", "/v1/score", json={"messages": TRANSCRIPT, "request_id": rid}, headers=AUTH)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["param"] == "request_id" and "printable ASCII" in err["message"]
    assert writer.sent == []  # refused before scoring: nothing published under that id


@pytest.mark.parametrize("rid", ["conv 1/2#3", "8d3e-11:a.b_c", ""])
def test_score_printable_request_id_is_echoed(app_env, rid):  # noqa: F811
    app, _, _ = app_env
    r = call(app, "POST", "/v1/score", json={"messages": TRANSCRIPT, "request_id": rid}, headers=AUTH)
    assert r.status_code == 200, r.text
    if rid:
        assert r.headers["x-request-id"] == rid and r.json()["request_id"] == rid
    else:
        assert r.json()["request_id"] == r.headers["x-request-id"] != ""


def chat(**kw):
    return {"model": "toy", "messages": [{"role": "user", "content": "abc"}], "max_tokens": 2, **kw}


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("stream", [False, True])
def test_seed_outside_64_bits_is_a_422(app_env, seed, stream):  # noqa: F811
    app, _, _ = app_env
    r = call(app, "POST", "/v1/chat/completions", json=chat(seed=seed, temperature=1.0, stream=stream), headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == "seed"


@pytest.mark.parametrize("seed", [2**64 - 1, -(2**63), 0])
def test_seed_at_the_64_bit_bounds_samples(app_env, seed):  # noqa: F811
    app, _, _ = app_env
    r = call(app, "POST", "/v1/chat/completions", json=chat(seed=seed, temperature=1.0), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1


@pytest.mark.parametrize("top_p", [1e-300, 5e-324, 1e-46])
def test_top_p_below_float32_resolution_keeps_the_top_token(app_env, top_p):  # noqa: F811
    app, _, _ = app_env
    greedy = call(app, "POST", "/v1/chat/completions", json=chat(temperature=0), headers=AUTH)
    r = call(app, "POST", "/v1/chat/completions", json=chat(temperature=1.0, top_p=top_p, seed=1), headers=AUTH)
    assert r.status_code == 200, r.text
    # nucleus of (almost) zero mass: only the most likely token, i.e. greedy decoding
    assert r.json()["choices"][0]["message"]["content"] == greedy.json()["choices"][0]["message"]["content"]


LONE = [{"role": "user", "content": "fine"}, {"role": "assistant", "content": [{"type": "text", "text": "b\ud800"}]}]


@pytest.mark.parametrize(("path", "payload"), [
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": "a\udc00b"}])),
    ("/v1/chat/completions", chat(messages=[*LONE, {"role": "user", "content": "go"}], stream=True)),
    ("/v1/score", {"messages": LONE}),
])
def test_lone_surrogate_in_content_is_a_422(app_env, path, payload):  # noqa: F811
    # valid JSON ("\ud800" escape) but not encodable text: the real tokenizer raised TypeError (500)
    app, _, _ = app_env
    r = call(app, "POST", path, content=json.dumps(payload), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "lone surrogate" in r.json()["error"]["message"] and r.json()["error"]["param"] == "messages"


def test_render_chat_refuses_a_lone_surrogate_before_the_tokenizer():
    from monitor.engine.chat import ChatFormatError, validate_messages

    with pytest.raises(ChatFormatError, match=r"messages\[1\].content is not valid Unicode: lone surrogate '\\ud800'"):
        validate_messages([{"role": "user", "content": "ok"}, {"role": "user", "content": "x\ud800"}])


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-38])
@pytest.mark.parametrize("stream", [False, True])
def test_temperature_too_small_for_float32_decodes_greedily(app_env, temperature, stream):  # noqa: F811
    # logits / 1e-300 overflowed float32 (softmax NaN, 500 from multinomial)
    app, _, _ = app_env
    greedy = call(app, "POST", "/v1/chat/completions", json=chat(temperature=0), headers=AUTH)
    r = call(app, "POST", "/v1/chat/completions", json=chat(temperature=temperature, seed=3, stream=stream),
             headers=AUTH)
    assert r.status_code == 200, r.text
    if stream:
        events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]
        assert events[-1] == "[DONE]" and not any('"error"' in e for e in events), r.text
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
                       if json.loads(e).get("choices"))
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == greedy.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/score"])
def test_chunked_body_over_the_limit_is_a_413(app_env, path):  # noqa: F811
    # no Content-Length: the limit was only checked on that header, so a chunked 5 MiB body
    # was read whole and tokenized (a memory/CPU bypass of max_body_bytes)
    import asyncio

    import httpx

    app, runtime, _ = app_env
    limit = runtime.settings.max_body_bytes

    async def chunks():
        yield b'{"model": "toy", "messages": [{"role": "user", "content": "'
        for _ in range(limit // 65536 + 16):
            yield b"x" * 65536
        yield b'"}]}'

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://toy") as client:
            return await client.post(path, content=chunks(), headers={**AUTH, "content-type": "application/json"})

    r = asyncio.run(go())
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413, r.text[:300]
    assert f"at most {limit} are accepted" in r.json()["error"]["message"]


def test_chunked_body_under_the_limit_is_served(app_env):  # noqa: F811
    import asyncio

    import httpx

    app, _, _ = app_env
    payload = json.dumps(chat(temperature=0)).encode()

    async def chunks():
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7]

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://toy") as client:
            return await client.post("/v1/chat/completions", content=chunks(),
                                     headers={**AUTH, "content-type": "application/json"})

    r = asyncio.run(go())
    assert r.status_code == 200, r.text
