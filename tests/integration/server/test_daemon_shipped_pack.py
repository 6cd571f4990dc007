"""The weight format a daemon runs by default (`--weights auto`): on the shipped default
pack, as `./ops/run.sh` starts it, the format that passed that pack's quality gates
(SmolLM2: int4), said in /readyz and the console's /ui/api/health, with tokens scored by all
four probes; on a pack that records no gated format (a synthetic one), fp32."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.server.conftest import AUTH, REAL_PACK, start_daemon, write_synthetic_pack
from tests.integration.server.test_daemon_chat import chat

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_the_shipped_pack_runs_its_gated_format_and_scores_every_token(daemon):
    if daemon.runtime.settings.pack_dir != REAL_PACK:
        pytest.skip("the shipped pack is not built in this checkout")
    ready = httpx.get(f"{daemon.base}/readyz", timeout=10).json()
    assert ready["model"]["weight_format"] == "int4"
    health = httpx.get(f"{daemon.base}/ui/api/health", headers=AUTH, timeout=10).json()
    assert health["model"]["weight_format"] == "int4"
    resp = chat(daemon.base, max_tokens=6)
    tokens = [t for t in resp["saeguard"]["tokens"] if t["scope"] == "response"]
    assert len(tokens) == 6
    assert all(set(t["scores"]) == {"deception", "sycophancy", "unsafe_code", "bias"} for t in tokens)


def test_an_ungated_pack_runs_fp32(loaded_model, _redis_session, tmp_path):
    pack = write_synthetic_pack(tmp_path / "pack")
    with start_daemon(loaded_model, pack, _redis_session.url, tmp_path) as d:
        assert httpx.get(f"{d.base}/readyz", timeout=10).json()["model"]["weight_format"] == "fp32"
