"""The generation engine: chat rendering, sampling, the activation tap, the decode loop."""

from monitor.engine.chat import ChatFormatError, render_chat
from monitor.engine.decode import Generation, PromptTooLongError, TokenEvent, generate_stream
from monitor.engine.engine import Engine
from monitor.engine.sampling import SamplingParams
from monitor.engine.tap import Tap, TapCall, TapError

__all__ = [
    "ChatFormatError",
    "Engine",
    "PromptTooLongError",
    "Generation",
    "SamplingParams",
    "Tap",
    "TapCall",
    "TapError",
    "TokenEvent",
    "generate_stream",
    "render_chat",
]
