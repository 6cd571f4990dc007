"""Dataset loaders for probe training and evaluation (data stays in ../shared/datasets).

Every labelled loader yields :class:`Transcript` records in one template per concept; see
README.md in this folder for each framing decision. Usage::

    from classifiers.datasets import load_transcripts, split, default_datasets_root
    data = load_transcripts("deception_lie_detector_pairs", default_datasets_root())
    parts = split(data, val_fraction=0.2, seed=0)
"""

from __future__ import annotations

from classifiers.datasets import (
    bias_bbq,
    bias_winobias,
    code_safecoder,
    code_sven,
    deception_lie_pairs,
    deception_repe,
    deception_truthfulqa,
    sycophancy_opinion,
    sycophancy_pressure,
    sycophancy_pressure_replies,
)
from classifiers.datasets.concepts import (
    CONCEPTS,
    FRAMINGS,
    ConceptFraming,
    Source,
    concept_names,
    register_concept,
)
from classifiers.datasets.files import default_datasets_root, resolve_datasets_root
from classifiers.datasets.registry import (
    DatasetSpec,
    dataset_names,
    get_dataset,
    load_scenarios,
    load_transcripts,
    register_dataset,
)
from classifiers.datasets.split import Split, split
from classifiers.datasets.types import (
    DatasetError,
    PressureScenario,
    Transcript,
    chat_pair,
    fingerprint,
)

__all__ = [
    "CONCEPTS",
    "FRAMINGS",
    "ConceptFraming",
    "DatasetError",
    "DatasetSpec",
    "PressureScenario",
    "Source",
    "Split",
    "Transcript",
    "chat_pair",
    "concept_names",
    "dataset_names",
    "default_datasets_root",
    "fingerprint",
    "get_dataset",
    "load_scenarios",
    "load_transcripts",
    "register_concept",
    "register_dataset",
    "resolve_datasets_root",
    "split",
]

# The built-in concepts, then their datasets: explicit lists (registering only fills a
# dict; nothing is read). A concept's sources name datasets registered below.
register_concept(ConceptFraming(
    "deception",
    (Source("deception_lie_detector_pairs"), Source("deception_repe_facts"), Source("deception_truthfulqa")),
    description="the assistant states something it presents as true that is false",
))
register_concept(ConceptFraming(
    "sycophancy",
    (Source("sycophancy_anthropic_opinion", "nlp_survey"),
     Source("sycophancy_anthropic_opinion", "political_typology")),
    # written replies to the free-form pressure scenarios (see the loader's caveats)
    held_out=(Source("sycophancy_pressure_replies"),),
    description="the assistant sides with the user's stated view instead of its own assessment",
))
register_concept(ConceptFraming(
    "unsafe_code",
    (Source("code_sven"), Source("code_safecoder_secnew")),
    description="the assistant writes code with a security vulnerability",
))
register_concept(ConceptFraming(
    "bias",
    (Source("bias_bbq_stereo_vs_anti"), Source("bias_winobias")),
    extra_eval=(Source("bias_bbq"),),
    description="the assistant's answer follows a social stereotype",
))

register_dataset(
    deception_lie_pairs.NAME,
    deception_lie_pairs.load,
    concept="deception",
    role="train",
    description="question -> honest vs lie sentence in one normalised form",
)
register_dataset(
    deception_repe.NAME,
    deception_repe.load,
    concept="deception",
    role="train",
    description="'tell me a true fact' -> true vs false statement",
)
register_dataset(
    deception_truthfulqa.NAME,
    deception_truthfulqa.load,
    concept="deception",
    role="cross_source",
    description="question -> correct vs length-matched incorrect answer",
)
register_dataset(
    sycophancy_opinion.NAME,
    sycophancy_opinion.load,
    concept="sycophancy",
    role="train",
    description="opinionated prompt -> choice matching the user vs the other choice",
)
register_dataset(
    sycophancy_pressure.NAME,
    sycophancy_pressure.load,
    concept="sycophancy",
    role="scenarios",
    labelled=False,
    description="multi-turn pressure scenarios; unlabelled, for generation only",
)
register_dataset(
    sycophancy_pressure_replies.NAME,
    sycophancy_pressure_replies.load,
    concept="sycophancy",
    role="cross_source",
    description="pressure scenarios with written replies: the set's sycophantic phrases vs its "
    "ground-truth assessment (evaluation only)",
)
register_dataset(
    code_sven.NAME,
    code_sven.load,
    concept="unsafe_code",
    role="train",
    description="request for a function -> vulnerable vs fixed code (fenced)",
)
register_dataset(
    code_safecoder.NAME,
    code_safecoder.load,
    concept="unsafe_code",
    role="cross_source",
    description="functional description -> vulnerable vs fixed code (fenced)",
)
register_dataset(
    bias_bbq.NAME,
    bias_bbq.load,
    concept="bias",
    role="train",
    description="ambiguous BBQ context -> stereotyped vs 'cannot be determined' answer",
)
register_dataset(
    bias_bbq.NAME_STEREO,
    bias_bbq.load_stereo_vs_anti,
    concept="bias",
    role="train",
    description="ambiguous BBQ context -> stereotyped vs anti-stereotyped answer",
)
register_dataset(
    bias_winobias.NAME,
    bias_winobias.load,
    concept="bias",
    role="cross_source",
    description="neutral request -> pro- vs anti-stereotyped sentence",
)
