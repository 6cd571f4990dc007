"""Resolve an SAE spec to a SAELens ``SAE``.

Specs: a local SAELens directory (``cfg.json`` + ``sae_weights.safetensors``, e.g.
``classifiers/packs/smollm2-135m-instruct/sae``) or ``saelens:<release>/<sae_id>``
(``SAE.from_pretrained``: needs hub access or the files in the Hugging Face cache).

The returned SAE takes raw residuals: ``sae.encode(x)`` applies whatever input
processing its config declares (our packs fold the activation normalisation into the
weights, so ``cfg.normalize_activations == "none"``; SAELens releases that keep a
normalisation apply it inside ``encode``). Callers never scale inputs themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAELENS_PREFIX = "saelens:"


class SAESpecError(ValueError):
    """A bad or unloadable SAE spec; the message is one line saying what to fix."""


def load_sae(spec: str, device: str = "cpu") -> Any:
    """Load the SAE named by ``spec`` on ``device`` (float32)."""
    from sae_lens import SAE

    if spec.startswith(SAELENS_PREFIX):
        rest = spec[len(SAELENS_PREFIX):]
        release, sep, sae_id = rest.partition("/")
        if not release or not sep or not sae_id:
            raise SAESpecError(f"bad SAE spec {spec!r}: expected 'saelens:<release>/<sae_id>', "
                               "e.g. saelens:gpt2-small-res-jb/blocks.8.hook_resid_pre")
        try:
            return SAE.from_pretrained(release, sae_id, device=device)
        except Exception as exc:  # hub/loader errors come in many types; all mean "cannot load"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SAESpecError(f"cannot load {spec!r} ({type(exc).__name__}: {first[:200]}); needs hub access "
                               "or the SAE in the local Hugging Face cache; offline, use a local SAE directory") from exc
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise SAESpecError(f"SAE spec {spec!r} is neither a directory nor 'saelens:<release>/<sae_id>'")
    missing = [n for n in ("cfg.json", "sae_weights.safetensors") if not (path / n).is_file()]
    if missing:
        raise SAESpecError(f"{path} is not a SAELens SAE directory (missing {', '.join(missing)})")
    try:
        return SAE.load_from_disk(str(path), device=device, dtype="float32")
    except Exception as exc:
        raise SAESpecError(f"cannot load SAE from {path}: {type(exc).__name__}: {str(exc)[:200]}") from exc
