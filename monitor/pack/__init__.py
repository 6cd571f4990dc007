"""The guard pack: the one place that reads a pack directory (see :mod:`.loader`)."""

from monitor.pack.loader import (
    SAE_WEIGHTS,
    GuardPack,
    PackError,
    check_probes_sae,
    file_sha256,
    load_pack,
)
from monitor.pack.probes_file import ProbeFileError, ProbeRecord, ProbeSet, load_probes

__all__ = [
    "SAE_WEIGHTS",
    "GuardPack",
    "PackError",
    "ProbeFileError",
    "ProbeRecord",
    "ProbeSet",
    "check_probes_sae",
    "file_sha256",
    "load_pack",
    "load_probes",
]
