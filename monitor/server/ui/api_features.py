"""``/ui/api/features*`` and ``/ui/api/probes/*``: the SAE feature browser and the
probes' report (REPORT.md and its ROC images, served as files)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from monitor.server.auth import require_auth
from monitor.server.errors import ApiError
from monitor.server.ui.calljob import run_on_worker
from monitor.server.ui.featurebook import decoder_neighbours, logit_effects
from monitor.server.ui.state import feature_book, runtime_of

router = APIRouter(prefix="/ui/api", dependencies=[Depends(require_auth)])

_PROBE_FILE = re.compile(r"^roc_[A-Za-z0-9_]+\.png$")


@router.get("/features")
async def list_features(request: Request, q: str = Query("", max_length=200),
                        offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    book = feature_book(request)
    total, page = await asyncio.to_thread(book.search, q, offset, limit)
    d_sae = int(runtime_of(request).backend.guard.W_dec.shape[0])
    return {"total": total, "d_sae": d_sae, "offset": offset,
            "items": [{"id": f.id, "label": f.label, "density": f.density} for f in page]}


@router.get("/features/{fid}")
async def feature_detail(request: Request, fid: int) -> dict[str, Any]:
    runtime = runtime_of(request)
    guard = runtime.backend.guard
    d_sae = int(guard.W_dec.shape[0])
    if not 0 <= fid < d_sae:
        raise ApiError(404, f"feature {fid} does not exist: this SAE has features 0..{d_sae - 1}",
                       code="feature_not_found")
    book = feature_book(request)
    info = (await asyncio.to_thread(lambda: book.features)).get(fid, {})
    model = runtime.lm.model

    def compute() -> dict[str, Any]:
        ln = getattr(getattr(model, "ln_final", None), "w", None)
        return {"neighbours": decoder_neighbours(guard.W_dec, fid),
                "logits": logit_effects(guard.W_dec[fid], model.unembed.W_U, ln,
                                        lambda t: guard.tokenizer.decode([t]))}

    computed = await run_on_worker(runtime, compute, "feature computation")
    return {"id": fid, "label": info.get("label", ""), "label_source": info.get("label_source", ""),
            "density": info.get("density"), "examples": book.examples(fid),
            "neighbours": [{"id": i, "cosine": c, "label": book.label(i)} for i, c in computed["neighbours"]],
            "logits": computed["logits"]}


@router.get("/probes/report")
async def probes_report(request: Request) -> dict[str, Any]:
    probes = runtime_of(request).settings.pack_dir / "probes"
    report = probes / "REPORT.md"
    text = await asyncio.to_thread(report.read_text, encoding="utf-8") if report.is_file() else ""
    images = sorted(p.name for p in probes.glob("roc_*.png") if _PROBE_FILE.match(p.name)) \
        if probes.is_dir() else []
    return {"report": text, "images": images}


@router.get("/probes/files/{name}")
async def probe_file(request: Request, name: str) -> FileResponse:
    path = runtime_of(request).settings.pack_dir / "probes" / name
    if not _PROBE_FILE.match(name) or not path.is_file():
        raise ApiError(404, f"no probe image {name!r} in this pack", code="not_found")
    return FileResponse(path, media_type="image/png")


