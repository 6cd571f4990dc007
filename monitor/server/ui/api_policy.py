"""``/ui/api/policy*``: the loaded policy, validating an edited one, applying it, and the
reload history.

Validation runs the policy loader's own checks against the pack and answers with its
issues (``file:line: field.path: message``); nothing is written. Applying needs the
admin token (like ``POST /v1/policy/reload``): the text is validated first and only a
valid one is written to the policy file (atomically) and reloaded; a rejected text
leaves the file and the serving policy as they were.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from monitor.policy import check_policy_text
from monitor.policy.issues import PolicyIssue
from monitor.policy.loader import policy_version, policy_warnings_text
from monitor.server.auth import require_admin, require_auth
from monitor.server.errors import error_body
from monitor.server.routes_ops import policy_json
from monitor.server.ui.state import runtime_of

router = APIRouter(prefix="/ui/api")


class PolicyText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(max_length=1_000_000, description="The whole policy file (YAML).")


def issue_json(issue: PolicyIssue) -> dict[str, Any]:
    return {"file": issue.file, "line": issue.line, "path": issue.path, "message": issue.message,
            "text": str(issue)}


def _check(request: Request, text: str) -> tuple[list[PolicyIssue], list[PolicyIssue]]:
    store = runtime_of(request).store
    source = str(store.path)
    issues = check_policy_text(text, store.pack, source)
    warnings = [] if issues else policy_warnings_text(text, store.pack, source)
    return issues, warnings


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@router.get("/policy", dependencies=[Depends(require_auth)])
async def get_policy(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    store = runtime.store
    try:
        raw = await asyncio.to_thread(store.path.read_bytes)
        text, file_version = raw.decode("utf-8", errors="replace"), policy_version(raw)
    except OSError as exc:
        text, file_version = f"# cannot read {store.path}: {exc}\n", None
    err = store.last_error
    history = store.history.items() if store.history is not None else []
    return {"policy": policy_json(store.current, str(store.path)), "text": text, "file_version": file_version,
            "last_reload_error": None if err is None else {"attempted_version": err.attempted_version,
                                                          "issues": [issue_json(i) for i in err.issues]},
            "history": [h.to_json() for h in reversed(history)],
            "can_apply": bool(runtime.settings.auth_token)}


@router.post("/policy/validate", dependencies=[Depends(require_auth)])
async def validate(body: PolicyText, request: Request) -> dict[str, Any]:
    issues, warnings = await asyncio.to_thread(_check, request, body.text)
    return {"ok": not issues, "version": policy_version(body.text.encode("utf-8")),
            "issues": [issue_json(i) for i in issues], "warnings": [issue_json(w) for w in warnings]}


@router.post("/policy/apply", dependencies=[Depends(require_admin)])
async def apply(body: PolicyText, request: Request) -> JSONResponse:
    store = runtime_of(request).store
    issues, _ = await asyncio.to_thread(_check, request, body.text)
    if issues:
        out = {"ok": False, "applied": False, "version": store.current.version,
               "issues": [issue_json(i) for i in issues]}
        out |= error_body(422, f"policy rejected before anything was applied, version "
                               f"{store.current.version[:12]} still serving: {issues[0]}", code="invalid_policy")
        return JSONResponse(out, status_code=422)
    await asyncio.to_thread(_write_atomically, store.path, body.text)
    result = await asyncio.to_thread(store.reload)
    out = {"ok": result.ok, "applied": result.ok, "changed": result.changed, "version": result.version,
           "issues": [issue_json(i) for i in result.issues], "warnings": [issue_json(w) for w in result.warnings]}
    if not result.ok:
        out |= error_body(422, f"reload rejected: {result.issues[0] if result.issues else 'unknown'}",
                          code="invalid_policy")
    return JSONResponse(out, status_code=200 if result.ok else 422)
