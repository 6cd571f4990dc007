"""Model-facing feature extraction for the probes.

- :mod:`.render` -- chat template -> token ids + the assistant content span.
- :mod:`.extract` -- per-token residuals of the content span (forward hooks, shared prompts).
- :mod:`.plan` -- which transcripts are extracted (capped, pair-preserving, benign chat).
- :mod:`.store` -- safetensors chunk files keyed by model hash, layers and content.
- :mod:`.job` -- the resumable background extraction (``saeguard probe-cache``).

Submodules are imported explicitly; nothing heavy is imported here.
"""
