"""Which labelled sources each concept's probe is trained and evaluated on: the concept
registry of :mod:`classifiers.datasets.concepts` (``FRAMINGS``, ``Source``,
``ConceptFraming``), re-exported where the probe pipeline has always imported them."""

from classifiers.datasets.concepts import FRAMINGS, ConceptFraming, Source

__all__ = ["FRAMINGS", "ConceptFraming", "Source"]
