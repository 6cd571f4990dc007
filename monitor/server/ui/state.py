"""What the console's routes share: the runtime and the pack's feature book (one per app)."""

from __future__ import annotations

from fastapi import Request

from monitor.server.runtime import Runtime
from monitor.server.ui.featurebook import FeatureBook


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def feature_book(request: Request) -> FeatureBook:
    """The app's :class:`FeatureBook` (created on first use)."""
    book: FeatureBook | None = getattr(request.app.state, "ui_features", None)
    if book is None:
        book = FeatureBook(runtime_of(request).settings.pack_dir)
        request.app.state.ui_features = book
    return book
