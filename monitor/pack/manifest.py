"""``manifest.json`` of a guard pack, validated: which model and hook point the pack was
built for, and how its SAE was trained (provenance the runtime records but does not read)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PackModel(BaseModel):
    """The model whose residual stream the pack's SAE and probes were trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The model spec (what --model takes), e.g. smollm2-135m-instruct.")
    weights_sha256: str = Field(
        description="Identity of the weights: the GGUF's sha256 for offline models, 'hf:<name>' for hub models "
                    "(LoadedModel.weights_sha256).")


class PackManifest(BaseModel):
    """The validated ``manifest.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(1, description="Manifest schema version.")
    model: PackModel | None = Field(
        None, description="The model the pack belongs to; a daemon refuses to run it on any other model.")
    hook_name: str = Field("", description="Hook point the SAE reads, e.g. blocks.9.hook_resid_post.")
    sae: dict[str, Any] = Field(default_factory=dict, description="SAE architecture and sizes (d_in, d_sae ...).")
    training: dict[str, Any] = Field(default_factory=dict, description="SAE training configuration (provenance).")
    corpus: dict[str, Any] = Field(default_factory=dict, description="Training corpus files and hashes (provenance).")
    library_versions: dict[str, str] = Field(default_factory=dict, description="Library versions used (provenance).")
    commands: list[str] = Field(default_factory=list, description="Commands that built the pack (provenance).")
    sae_eval: dict[str, Any] = Field(default_factory=dict, description="Held-out SAE metrics (provenance).")
    weights: Literal["fp32", "bf16", "int4"] | None = Field(
        None, description="The fastest weight format that passes this pack's quality gates "
                          "(ops/bench/weights_quality.py; README \"Weight formats\"): what `--weights auto`, the "
                          "default, runs on a CPU. None: fp32.")
    architecture_comparison: list[dict[str, Any]] = Field(
        default_factory=list, description="Other SAE runs compared before this one was chosen (provenance).")
