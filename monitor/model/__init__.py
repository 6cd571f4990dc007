"""Model loading: specs, the offline SmolLM2 default, device choice, fast weight layout."""

from monitor.model.errors import ModelSpecError
from monitor.model.loader import LoadedModel, load_model

__all__ = ["LoadedModel", "ModelSpecError", "load_model"]
