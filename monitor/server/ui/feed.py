"""``GET /ui/api/alerts/stream``: the Redis alert stream as server-sent events.

Each alert is one event whose ``id:`` is its stream entry id. A client that reconnects
sends the last id it saw (``Last-Event-ID`` header, or ``?last_id=``) and gets every
entry after it, so nothing is skipped across a reconnect (as long as the entry is still
in the stream, which keeps ``stream_maxlen`` entries). A new client first gets the last
``backlog`` alerts. Redis being away is reported as a ``status`` event and retried.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aredis
import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from redis.asyncio.cluster import RedisCluster

from monitor.alerts.cluster import cluster_url
from monitor.alerts.model import Alert
from monitor.server.auth import require_auth
from monitor.server.errors import ApiError
from monitor.server.ui.state import runtime_of

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/ui/api", dependencies=[Depends(require_auth)])

STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
BLOCK_MS = 1000
HEARTBEAT_S = 10.0


def async_client(url: str) -> Any:
    """An asyncio Redis client for ``url`` (``redis+cluster://`` too)."""
    plain = cluster_url(url)
    if plain is not None:
        return RedisCluster.from_url(plain, socket_timeout=5.0)
    return aredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)


def alert_event(entry_id: Any, fields: Any) -> str:
    """One SSE event: ``id`` is the stream entry id, ``data`` the alert as JSON."""
    sid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    data = Alert.from_fields(fields).to_json_dict()
    if isinstance(data.get("ts"), float) and math.isnan(data["ts"]):
        data["ts"] = None
    data["stream_id"] = sid
    return f"id: {sid}\nevent: alert\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def status_event(redis_ok: bool, error: str = "") -> str:
    return f"event: status\ndata: {json.dumps({'redis': redis_ok, 'error': error})}\n\n"


@router.get("/alerts/stream")
async def alert_stream(request: Request, last_id: str = Query("", max_length=50),
                       backlog: int = Query(200, ge=0, le=5000)) -> StreamingResponse:
    resume = request.headers.get("last-event-id", "") or last_id
    if resume and not STREAM_ID.match(resume):
        raise ApiError(422, f"last event id {resume!r} is not a stream id like 1700000000000-0", param="last_id")
    runtime = runtime_of(request)
    stream = runtime.settings.stream
    client = async_client(runtime.settings.redis_url)

    async def events() -> AsyncIterator[str]:
        cursor = resume
        ok: bool | None = None
        quiet = 0.0
        try:
            while not runtime.gate.draining and not await request.is_disconnected():
                try:
                    if not cursor:
                        entries = list(reversed(await client.xrevrange(stream, count=backlog))) if backlog else []
                        latest = await client.xrevrange(stream, count=1)
                        start = entries[-1][0] if entries else latest[0][0] if latest else b"0-0"
                        cursor = start.decode() if isinstance(start, bytes) else str(start)
                    else:
                        got = await client.xread({stream: cursor}, count=200, block=BLOCK_MS)
                        entries = got[0][1] if got else []
                except (aredis.RedisError, OSError) as exc:
                    if ok is not False:
                        ok = False
                        yield status_event(False, f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(1.0)
                    continue
                if ok is not True:
                    ok = True
                    yield status_event(True)
                for entry_id, fields in entries:
                    yield alert_event(entry_id, fields)
                    cursor = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                quiet = 0.0 if entries else quiet + BLOCK_MS / 1000
                if quiet >= HEARTBEAT_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        finally:
            await client.aclose()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
