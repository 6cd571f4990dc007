"""``GET /ui/api/health``: what the Health tab shows besides ``/readyz`` and ``/metrics``
(which the page reads itself, so its numbers are those): the hashes of the model, SAE,
probes and policy, and the alert latency of the last alerts in the stream (entry time
in Redis minus the time the alert was raised)."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request

from monitor.alerts.model import Alert
from monitor.pack import SAE_WEIGHTS, file_sha256
from monitor.server.auth import require_auth
from monitor.server.ui.feed import async_client
from monitor.server.ui.state import runtime_of

router = APIRouter(prefix="/ui/api", dependencies=[Depends(require_auth)])

LATENCY_WINDOW = 200


def _hash_or_empty(path: Path) -> str:
    return file_sha256(path) if path.is_file() else ""


def pack_hashes(pack_dir: Path) -> dict[str, str]:
    return {"sae_sha256": _hash_or_empty(pack_dir / "sae" / SAE_WEIGHTS),
            "probes_sha256": _hash_or_empty(pack_dir / "probes" / "probes.safetensors")}


async def alert_latency(redis_url: str, stream: str) -> dict[str, Any]:
    """Raised -> in the stream, over the last :data:`LATENCY_WINDOW` alerts (ms)."""
    client = async_client(redis_url)
    try:
        entries = await client.xrevrange(stream, count=LATENCY_WINDOW)
    except Exception as exc:  # Redis away: the tab says so
        return {"n": 0, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.aclose()
    lat = []
    for entry_id, fields in entries:
        sid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        ts = Alert.from_fields(fields).ts
        if ts == ts:  # not NaN
            lat.append(int(sid.split("-")[0]) - ts * 1000.0)
    if not lat:
        return {"n": 0}
    lat.sort()
    return {"n": len(lat), "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1), "max_ms": round(lat[-1], 1)}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    s = runtime.settings
    policy = runtime.store.current
    hashes = await asyncio.to_thread(pack_hashes, Path(s.pack_dir))
    lm = runtime.lm
    return {"model": {"id": runtime.model_id, "spec": getattr(lm, "spec", ""),
                      "weights_sha256": getattr(lm, "weights_sha256", ""),
                      "weight_format": runtime.backend.engine.weights},
            "pack": {"dir": str(s.pack_dir), "hook": runtime.backend.guard.hook_name, **hashes},
            "policy": {"name": policy.name, "version": policy.version, "mode": policy.mode},
            "redis": {"url_scheme": s.redis_url.split("://", 1)[0], "stream": s.stream},
            "alert_latency": await alert_latency(s.redis_url, s.stream)}
