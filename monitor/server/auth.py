"""Bearer-token auth.

With ``auth_token`` set, every endpoint except ``/healthz`` and ``/readyz`` (probes)
needs ``Authorization: Bearer <token>``. ``POST /v1/policy/reload`` always needs it:
without a configured token, reloading over HTTP is refused (use SIGHUP or edit the
file). Settings refuse a non-loopback bind without a token.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from monitor.server.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _check(request: Request, token: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not header:
        raise ApiError(401, "missing Authorization header: send 'Authorization: Bearer <token>'",
                       code="missing_token", headers=_CHALLENGE)
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "malformed Authorization header: expected 'Bearer <token>'",
                       code="malformed_token", headers=_CHALLENGE)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "invalid bearer token", code="invalid_token", headers=_CHALLENGE)


def require_auth(request: Request) -> None:
    """Dependency: the token, when one is configured."""
    token = request.app.state.runtime.settings.auth_token
    if token:
        _check(request, token)


def require_admin(request: Request) -> None:
    """Dependency: always a token (policy reload)."""
    token = request.app.state.runtime.settings.auth_token
    if not token:
        raise ApiError(401, "policy reload over HTTP needs an auth token configured on the server "
                            "(SAEGUARD_AUTH_TOKEN or --auth-token); or send SIGHUP / edit the file",
                       code="auth_not_configured", headers=_CHALLENGE)
    _check(request, token)
