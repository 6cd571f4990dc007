"""saeguard's learned parts: dataset loaders, SAE training and evaluation, probe training,
calibration and evaluation, and the default guard packs under ``packs/``."""
