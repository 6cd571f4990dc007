"""Which labelled sources each concept's probe is trained and evaluated on.

A *source* is a registered dataset, optionally restricted to one ``meta["domain"]`` (the
Anthropic opinion set has two: NLP-survey and political-typology personas, which serve as
two sources for sycophancy since no second labelled sycophancy dataset exists).

Each concept trains on SEVERAL sources at once and is evaluated leave-one-source-out: the
probe that never saw source S is scored on all of S. That is the generalisation estimate;
in-source numbers come from each source's 20% validation split (group split, seed 0).
A concept may also have *held-out* sources that no probe ever trains on: every attempt's
fit on all the training sources is scored on the whole of each (a cross-source number like
LOSO, but for a source outside the training set). They never choose anything (C, window,
threshold): they are only reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from classifiers.datasets import Transcript


@dataclass(frozen=True)
class Source:
    """A labelled slice of one dataset."""

    dataset: str
    """Registered dataset name."""
    domain: str | None = None
    """Keep only transcripts with this ``meta["domain"]`` (None: all)."""

    @property
    def name(self) -> str:
        """``dataset`` or ``dataset:domain``."""
        return self.dataset if self.domain is None else f"{self.dataset}:{self.domain}"

    def keep(self, transcript: Transcript) -> bool:
        """Whether a transcript of ``dataset`` belongs to this source."""
        return self.domain is None or transcript.meta.get("domain") == self.domain


@dataclass(frozen=True)
class ConceptFraming:
    """The sources of one concept."""

    concept: str
    """Probe name / concept."""
    sources: tuple[Source, ...]
    """Sources the shipped probe trains on (train splits) and that LOSO holds out in turn."""
    extra_eval: tuple[Source, ...] = ()
    """Sources only evaluated on their validation split (never trained on by the shipped
    probe), e.g. a known-artefact framing of a training dataset."""
    held_out: tuple[Source, ...] = ()
    """Cross-source sets no probe trains on, scored in full (see the module doc)."""

    @property
    def evaluated(self) -> tuple[Source, ...]:
        """Every source loaded for this concept: training, extra_eval, held_out."""
        return self.sources + self.extra_eval + self.held_out

    @property
    def held_out_names(self) -> tuple[str, ...]:
        """Names of the held-out sources."""
        return tuple(s.name for s in self.held_out)


FRAMINGS: Mapping[str, ConceptFraming] = {
    "deception": ConceptFraming(
        "deception",
        (Source("deception_lie_detector_pairs"), Source("deception_repe_facts"),
         Source("deception_truthfulqa")),
    ),
    "sycophancy": ConceptFraming(
        "sycophancy",
        (Source("sycophancy_anthropic_opinion", "nlp_survey"),
         Source("sycophancy_anthropic_opinion", "political_typology")),
        # written replies to the free-form pressure scenarios (see the loader's caveats)
        held_out=(Source("sycophancy_pressure_replies"),),
    ),
    "unsafe_code": ConceptFraming(
        "unsafe_code", (Source("code_sven"), Source("code_safecoder_secnew")),
    ),
    "bias": ConceptFraming(
        "bias",
        (Source("bias_bbq_stereo_vs_anti"), Source("bias_winobias")),
        extra_eval=(Source("bias_bbq"),),
    ),
}
