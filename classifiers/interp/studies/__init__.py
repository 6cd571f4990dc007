"""Intervention studies: saturation sweep, ablation, specificity (each a function returning
a frozen result with ``to_json``; the CLI prints it and saves a PNG via
:mod:`classifiers.interp.plots`)."""
