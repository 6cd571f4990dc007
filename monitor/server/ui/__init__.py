"""The web console at ``/ui``: live chat with per-token scores, the alert feed, policies,
SAE features and health, served by the daemon itself (static HTML + plain JS, no CDN,
no build step).

The page is a static shell; every piece of data comes from JSON endpoints that need the
same bearer token as the API (the browser keeps it for the tab's session and sends it as
``Authorization: Bearer``). Everything that comes from the model or a user is put in the
page with ``textContent``, never parsed as HTML, and the page's Content-Security-Policy
allows scripts only from the daemon's own ``/ui/static/`` files.
"""

from __future__ import annotations

from fastapi import APIRouter


def build_router() -> APIRouter:
    """All console routes: the page and its assets, and the ``/ui/api/*`` endpoints."""
    from monitor.server.ui import (
        api_explain,
        api_features,
        api_health,
        api_policy,
        feed,
        pages,
    )

    router = APIRouter(include_in_schema=False)
    for module in (pages, api_features, api_explain, api_policy, api_health, feed):
        router.include_router(module.router)
    return router
