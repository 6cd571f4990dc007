"""The guard pack: :func:`load_pack` is the one place that reads a pack directory."""

from monitor.pack.errors import PackError
from monitor.pack.loader import (
    SAE_WEIGHTS,
    GuardPack,
    check_probes_sae,
    file_sha256,
    load_pack,
)
from monitor.pack.manifest import PackManifest, PackModel
from monitor.pack.probes_file import ProbeFileError, ProbeRecord, ProbeSet, load_probes

__all__ = [
    "SAE_WEIGHTS",
    "GuardPack",
    "PackError",
    "PackManifest",
    "PackModel",
    "ProbeFileError",
    "ProbeRecord",
    "ProbeSet",
    "check_probes_sae",
    "file_sha256",
    "load_pack",
    "load_probes",
]
