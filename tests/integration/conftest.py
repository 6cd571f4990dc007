"""Fixtures for integration tests with the real default model (session-scoped: loaded once)."""

import pytest
import torch


@pytest.fixture(scope="session")
def loaded_model():
    """The real SmolLM2-135M-Instruct as a re-laid HookedTransformer (LoadedModel)."""
    from monitor.model import load_model
    from tests.conftest import threads_for_tests

    torch.set_num_threads(threads_for_tests())
    return load_model()


@pytest.fixture(scope="session")
def engine(loaded_model):
    from monitor.engine import Engine

    return Engine.from_loaded(loaded_model)


@pytest.fixture(scope="session")
def hf_model(loaded_model):
    """The same weights as a plain transformers model (for parity checks)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(loaded_model.hf_dir, dtype=torch.float32).eval()
