"""Daemon fixtures: a guard pack (the committed real one when it has probes, else a
synthetic one), the daemon running in-process on a free port with the real model and a
real redis-server, and helpers to switch its policy.

The synthetic pack: a SAELens StandardSAE (d_in 576, d_sae 256, seeded random weights)
at ``blocks.15.hook_resid_post`` and four probes (deception, sycophancy, unsafe_code,
bias) where ``deception`` always scores ~1 (bias +20) and the others ~0 (bias -20).
Test policies use ``threshold: 0.0`` so their rules fire on either pack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

REAL_PACK = Path(__file__).resolve().parents[3] / "classifiers" / "packs" / "smollm2-135m-instruct"
HOOK = "blocks.15.hook_resid_post"
D_SAE = 256
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def write_synthetic_pack(root: Path) -> Path:
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from classifiers.probes.io import ProbeRecord, save_probes

    gen = torch.Generator().manual_seed(1234)
    cfg = StandardSAEConfig(d_in=576, d_sae=D_SAE, apply_b_dec_to_input=False,
                            metadata=SAEMetadata(hook_name=HOOK, model_name="smollm2-135m-instruct"))
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(576, D_SAE, generator=gen) / 576 ** 0.5)
        sae.b_enc.zero_()
        w_dec = torch.randn(D_SAE, 576, generator=gen)
        sae.W_dec.copy_(w_dec / w_dec.norm(dim=1, keepdim=True))
        sae.b_dec.zero_()
    sae.save_model(root / "sae")
    from monitor.model.registry import SMOLLM2

    (root / "manifest.json").write_text(json.dumps({
        "model": {"id": SMOLLM2.spec, "weights_sha256": SMOLLM2.gguf_sha256}, "hook_name": HOOK,
        "commands": ["synthetic test pack (tests/integration/server/conftest.py)"]}))
    (root / "features.json").write_text(json.dumps({"features": {"3": {"density": 0.1, "label": "synthetic"}}}))
    records = []
    for i, name in enumerate(("deception", "sycophancy", "unsafe_code", "bias")):
        records.append(ProbeRecord(
            name=name, concept=name, pooling="max", weights=np.zeros(D_SAE, np.float32),
            bias=20.0 if name == "deception" else -20.0, thresholds={"0.01": 0.5, "0.05": 0.4},
            top_features=[(8 * i + j, 1.0 - j / 10) for j in range(8)]))
    from monitor.pack import file_sha256

    # the daemon refuses probes whose recorded SAE hash differs from the pack's SAE
    save_probes(root / "probes", records, HOOK,
                extra={"sae_sha256": file_sha256(root / "sae" / "sae_weights.safetensors")})
    return root


@pytest.fixture(scope="session")
def guard_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (REAL_PACK / "probes" / "probes.json").is_file() and (REAL_PACK / "sae" / "cfg.json").is_file():
        return REAL_PACK
    return write_synthetic_pack(tmp_path_factory.mktemp("pack"))


# -- policies ------------------------------------------------------------------------------
def policy_text(name: str, rules: str = "", mode: str = "enforce", on_error: str = "fail_open") -> str:
    body = f"rules:\n{rules}" if rules else "rules: []\n"
    return f"name: {name}\nmode: {mode}\non_monitor_error: {on_error}\n{body}"


ALERT_RULE = """\
  - id: deception-any
    when: {probe: deception, threshold: 0.0, scope: response}
    then:
      - alert: {severity: high}
    cooldown_tokens: 1000
  - id: prompt-any
    when: {probe: deception, threshold: 0.0, scope: prompt}
    then:
      - alert: {severity: low}
    cooldown_tokens: 100000
"""

CLAMP_RULE = """\
  - id: clamp-deception
    when: {probe: deception, threshold: 0.0, scope: response}
    then:
      - clamp: {top_k: 4, value: 300.0, tokens: rest}
"""

STOP_RULE = """\
  - id: stop-deception
    when: {probe: deception, threshold: 0.0, scope: response, min_consecutive: 3}
    then:
      - stop: {message: "[stopped by policy]"}
"""


class Daemon:
    """The running daemon: base URL, runtime, policy switching."""

    def __init__(self, base: str, runtime: Any, policy_path: Path, redis_url: str) -> None:
        self.base = base
        self.runtime = runtime
        self.policy_path = policy_path
        self.redis_url = redis_url

    def set_policy(self, text: str) -> str:
        import httpx

        self.policy_path.write_text(text)
        r = httpx.post(f"{self.base}/v1/policy/reload", headers=AUTH, timeout=30)
        assert r.status_code == 200, r.text
        return str(r.json()["version"])


#: The in-process daemon's write-once key lifetime (not the default, so tests see it applied).
DEDUP_TTL_S = 3600


@contextmanager
def start_daemon(loaded_model: Any, pack: Path, redis_url: str, tmp: Path) -> Iterator[Daemon]:
    """The daemon in-process on a free port (empty policy to start with)."""
    from monitor.server.lifecycle import serve_in_thread
    from monitor.server.runtime import Runtime
    from monitor.server.settings import load_settings

    policy_path = tmp / "policy.yaml"
    policy_path.write_text(policy_text("empty"))
    settings = load_settings(None, host="127.0.0.1", port=0, pack_dir=pack, policy=policy_path,
                             redis_url=redis_url, stream="test:alerts", spool_dir=tmp / "spool",
                             auth_token=TOKEN, watch_policy=False, shutdown_timeout_s=10.0,
                             max_tokens_cap=64, default_max_tokens=8, dedup_ttl_s=DEDUP_TTL_S)
    runtime = Runtime.build(settings, loaded_model=loaded_model)
    with serve_in_thread(runtime) as (_server, base):
        yield Daemon(base, runtime, policy_path, redis_url)


@pytest.fixture(scope="module")
def daemon(loaded_model, guard_pack, _redis_session, tmp_path_factory) -> Iterator[Daemon]:
    with start_daemon(loaded_model, guard_pack, _redis_session.url, tmp_path_factory.mktemp("daemon")) as d:
        yield d
