"""Operations endpoints: health, readiness, metrics, models, policy and its reload."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.policy.compiled import CompiledPolicy
from monitor.server.auth import require_admin, require_auth
from monitor.server.errors import error_body
from monitor.server.runtime import Runtime

router = APIRouter()


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to take requests: model, pack, policy, alert path, worker (503 with detail if not)."""
    ready, detail = _rt(request).readiness()
    return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)


@router.get("/metrics", dependencies=[Depends(require_auth)])
async def metrics(request: Request) -> Response:
    rt = _rt(request)
    body = rt.metrics.render(rt.sink.state(), rt.gate.in_flight, rt.scheduler.depth,
                             getattr(rt.scheduler, "active", 0))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", dependencies=[Depends(require_auth)])
async def models(request: Request) -> dict[str, Any]:
    rt = _rt(request)
    return {"object": "list", "data": [{"id": rt.model_id, "object": "model", "created": int(time.time()),
                                        "owned_by": "saeguard"}]}


def policy_json(policy: CompiledPolicy, path: str) -> dict[str, Any]:
    rules = []
    for rule in policy.rules:
        rules.append({
            "id": rule.id,
            "probes": sorted({leaf.probe for leaf in rule.leaves}),
            "thresholds": {leaf.probe: leaf.threshold_source for leaf in rule.leaves},
            "scopes": sorted({leaf.scope for leaf in rule.leaves}),
            "actions": [a.kind for a in rule.actions],
            "severity": rule.severity,
            "cooldown_tokens": rule.cooldown_tokens,
        })
    return {"name": policy.name, "version": policy.version, "mode": policy.mode,
            "on_monitor_error": policy.on_monitor_error, "description": policy.description,
            "path": path, "rules": rules}


@router.get("/v1/policy", dependencies=[Depends(require_auth)])
async def get_policy(request: Request) -> dict[str, Any]:
    rt = _rt(request)
    out = policy_json(rt.store.current, str(rt.store.path))
    err = rt.store.last_error
    out["last_reload_error"] = None if err is None else {"attempted_version": err.attempted_version,
                                                          "issues": [str(i) for i in err.issues]}
    return out


@router.post("/v1/policy/reload", dependencies=[Depends(require_admin)])
async def reload_policy(request: Request) -> JSONResponse:
    """Re-read the policy file; 200 when it is serving (changed or not), 422 when rejected.

    A rejection also carries the ``{"error": {...}}`` envelope every other error status has
    (message: how many issues, the first one, and the version still serving), so a client
    that only knows that shape still gets a readable error."""
    rt = _rt(request)
    result = await asyncio.to_thread(rt.store.reload)
    issues = [str(i) for i in result.issues]
    body: dict[str, Any] = {
        "ok": result.ok, "changed": result.changed, "version": result.version,
        "attempted_version": result.attempted_version, "issues": issues,
        "warnings": [str(w) for w in result.warnings],
        "policy": policy_json(rt.store.current, str(rt.store.path))}
    if not result.ok:
        first = issues[0] if issues else "rejected"
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        body |= error_body(422, f"policy file rejected, version {str(result.version)[:12]} still serving: "
                                f"{first}{more}", code="invalid_policy")
    return JSONResponse(body, status_code=200 if result.ok else 422)
