"""Where the datasets live and small readers shared by the loaders (no copies in the repo)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from classifiers.datasets.types import DatasetError

#: Repository root: classifiers/datasets/files.py -> parents[2].
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_datasets_root() -> Path:
    """``../shared/datasets`` relative to the repository root (not the CWD)."""
    return (REPO_ROOT / ".." / "shared" / "datasets").resolve()


def resolve_datasets_root(explicit: str | Path | None, env_value: str | None = None) -> Path:
    """Pick the datasets root: explicit argument, else an env value the CLI read, else default.

    Library code never reads the environment; the CLI passes
    ``os.environ.get("SAEGUARD_DATASETS")`` as ``env_value``. Relative paths are taken
    relative to the repository root.
    """
    chosen = explicit if explicit not in (None, "") else env_value
    if chosen is None or chosen == "":
        return default_datasets_root()
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def require_file(root: Path, relative: str) -> Path:
    """``root / relative``, or a DatasetError naming the missing path."""
    path = Path(root) / relative
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path} (datasets root: {root})")
    return path


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise DatasetError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row_number, row)`` (row 1 is the first row after the header)."""
    with path.open(encoding="utf-8", newline="") as fh:
        yield from enumerate(csv.DictReader(fh), start=1)


def field(row: dict[str, Any], key: str, where: str) -> Any:
    """``row[key]`` or a DatasetError naming the file position and the missing key."""
    if key not in row:
        raise DatasetError(f"{where}: missing field {key!r}")
    return row[key]


def sentence(text: str) -> str:
    """Strip, collapse whitespace and make sure the text ends with terminal punctuation."""
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        text += "."
    return text


def text_group(prefix: str, text: str) -> str:
    """Group id from normalised text (case/whitespace-insensitive): duplicates share a group."""
    key = " ".join(text.lower().split())
    return f"{prefix}:{hashlib.sha1(key.encode('utf-8')).hexdigest()[:12]}"
