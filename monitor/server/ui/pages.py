"""``/ui``: the console page and its static assets (from the package; no CDN), and the
two small endpoints the page starts with.

The page is a static shell without data, so it is served without a token; the data
endpoints need one. A strict Content-Security-Policy (scripts, styles and connections
only from this origin, no inline script) backs up the page's rule of putting model and
user text in with ``textContent`` only.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from monitor.server.auth import require_auth
from monitor.server.errors import ApiError
from monitor.server.ui.state import runtime_of

router = APIRouter()

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "cache-control": "no-cache"}
_ASSET = re.compile(r"^[a-z][a-z0-9_-]*\.(js|css|html|png|svg)$")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
          "html": "text/html; charset=utf-8", "png": "image/png", "svg": "image/svg+xml"}


def _asset(name: str) -> bytes | None:
    if not _ASSET.match(name):
        return None
    path = resources.files("monitor.server.ui") / "static" / name
    return path.read_bytes() if path.is_file() else None


@router.get("/ui")
async def index_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def index() -> Response:
    body = _asset("index.html")
    if body is None:
        raise ApiError(404, "the console's files are missing from this installation", code="not_found")
    return Response(body, media_type=_TYPES["html"], headers=SECURITY_HEADERS)


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    body = _asset(name)
    if body is None:
        raise ApiError(404, f"no console asset {name!r}", code="not_found")
    return Response(body, media_type=_TYPES[name.rsplit(".", 1)[1]], headers=SECURITY_HEADERS)


@router.get("/ui/api/login-info")
async def login_info(request: Request) -> dict[str, Any]:
    """Whether the page must ask for a token (no data; no token needed)."""
    return {"auth_required": bool(runtime_of(request).settings.auth_token)}


@router.get("/ui/api/info", dependencies=[Depends(require_auth)])
async def info(request: Request) -> dict[str, Any]:
    """What the chat form offers: the served model, the probes, the policy in force."""
    runtime = runtime_of(request)
    policy = runtime.store.current
    return {"model": runtime.model_id, "probes": list(runtime.backend.guard.probes.names),
            "pack": str(runtime.settings.pack_dir), "hook": runtime.backend.guard.hook_name,
            "policy": {"name": policy.name, "version": policy.version, "mode": policy.mode},
            "admin": bool(runtime.settings.auth_token)}
