"""The FastAPI application: routers, JSON error handlers, request metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.server.errors import error_response, install_error_handlers
from monitor.server.runtime import Runtime

_KNOWN = ("/v1/chat/completions", "/v1/score", "/v1/policy/reload", "/v1/policy", "/v1/models",
          "/healthz", "/readyz", "/metrics")


class RequestMetrics:
    """Pure ASGI middleware: counts responses by endpoint and status (streaming-safe) and
    refuses bodies over ``max_body_bytes`` (413): at once from Content-Length, and while
    reading a chunked body (which has none)."""

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in _KNOWN else "other"
        status = {"code": 500}
        limit = self.runtime.settings.max_body_bytes
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if length.isdigit() and int(length) > limit:
            response = error_response(413, f"request body is {int(length)} bytes; at most {limit} are accepted")
            self.runtime.metrics.requests.labels(endpoint=endpoint, status="413").inc()
            await response(scope, receive, send)
            return

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        received = 0

        async def receive_limited() -> Any:
            # a chunked body has no Content-Length: count what arrives (FastAPI passes an
            # HTTPException raised while reading the body through to the JSON handler)
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"request body is over {limit} bytes; at most {limit} "
                                                      "are accepted")
            return message

        try:
            await self.app(scope, receive_limited, send_wrapper)
        finally:
            self.runtime.metrics.requests.labels(endpoint=endpoint, status=str(status["code"])).inc()


def create_app(runtime: Runtime) -> FastAPI:
    from monitor.server import routes_chat, routes_ops, routes_score
    from monitor.server.ui import build_router as ui_router

    app = FastAPI(title="saeguard", version="0.1.0",
                  description="Safety monitoring sidecar: OpenAI-compatible chat with SAE probes and policies.")
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(routes_chat.router)
    app.include_router(routes_score.router)
    app.include_router(routes_ops.router)
    app.include_router(ui_router())
    app.add_middleware(RequestMetrics, runtime=runtime)
    return app
