"""SAE architectures we train, in an explicit registry keyed by SAELens' architecture name.

Each entry builds a SAELens ``TrainingSAE`` from our :class:`SAEShape`; the key is the
string SAELens saves in ``cfg.json`` ("topk", "jumprelu", "standard").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SAEShape:
    d_in: int
    """Residual width of the model (576 for SmolLM2-135M)."""
    d_sae: int
    """Dictionary size."""
    k: int = 32
    """TopK: active features per token. JumpReLU: the target L0 of its quadratic penalty."""
    l0_coefficient: float = 1.0
    """JumpReLU: weight of the L0 penalty. Standard (ReLU): L1 coefficient."""
    hook_name: str = ""
    model_name: str = ""


SAEFactory = Callable[[SAEShape, dict[str, Any]], Any]
_ARCHS: dict[str, SAEFactory] = {}


def register_architecture(name: str, factory: SAEFactory) -> None:
    if name in _ARCHS:
        raise ValueError(f"SAE architecture {name!r} is already registered")
    _ARCHS[name] = factory


def architecture_names() -> tuple[str, ...]:
    return tuple(_ARCHS)


def build_training_sae(name: str, shape: SAEShape) -> Any:
    """A fresh SAELens TrainingSAE (float32, CPU, activation normalisation on)."""
    from sae_lens.saes.sae import SAEMetadata

    if not _ARCHS:
        _register_builtin()
    if name not in _ARCHS:
        raise ValueError(f"unknown SAE architecture {name!r}; known: {', '.join(_ARCHS)}")
    common = {
        "d_in": shape.d_in,
        "d_sae": shape.d_sae,
        "normalize_activations": "expected_average_only_in",
        "metadata": SAEMetadata(model_name=shape.model_name, hook_name=shape.hook_name,
                                prepend_bos=False, seqpos_slice=(1, None)),
    }
    return _ARCHS[name](shape, common)


def _topk(shape: SAEShape, common: dict[str, Any]) -> Any:
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

    return TopKTrainingSAE(TopKTrainingSAEConfig(k=shape.k, **common))


def _jumprelu(shape: SAEShape, common: dict[str, Any]) -> Any:
    from sae_lens import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig

    return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
        jumprelu_sparsity_loss_mode="quadratic", target_l0=float(shape.k), jumprelu_init_threshold=0.2,
        l0_coefficient=shape.l0_coefficient, l0_warm_up_steps=200,
        pre_act_loss_coefficient=3e-6, **common))


def _standard(shape: SAEShape, common: dict[str, Any]) -> Any:
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig

    return StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=shape.l0_coefficient, **common))


def _register_builtin() -> None:
    register_architecture("topk", _topk)
    register_architecture("jumprelu", _jumprelu)
    register_architecture("standard", _standard)
