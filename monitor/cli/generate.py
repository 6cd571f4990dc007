"""``saeguard generate "prompt"``: stream the model's answer to the terminal."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that loads a model."""
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="model spec: smollm2-135m-instruct (offline default), qwen2.5-coder-0.5b-instruct, "
                        "qwen2.5-coder-1.5b-instruct (`saeguard models`) or hf:<name>")
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("generate", help="generate an answer to a prompt, streamed to the terminal")
    p.add_argument("prompt", help="the user message")
    p.add_argument("--system", default=None, help="system prompt (default: the model's own)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    add_model_args(p)
    p.set_defaults(func=run)


def load_engine(args: argparse.Namespace) -> Any:
    """Load the model named by ``--model`` into an Engine; one-line errors on failure."""
    import torch

    from monitor.cli import CliError
    from monitor.engine import Engine
    from monitor.model import ModelSpecError, load_model

    torch.set_num_threads(max(1, args.threads))
    try:
        lm = load_model(args.model, device=args.device)
    except ModelSpecError as exc:
        raise CliError(str(exc)) from None
    return lm, Engine.from_loaded(lm)


def run(args: argparse.Namespace) -> int:
    from monitor.cli import CliError
    from monitor.engine import PromptTooLongError, SamplingParams

    try:
        params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature,
                                top_p=args.top_p, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _, engine = load_engine(args)
    messages = ([{"role": "system", "content": args.system}] if args.system else [])
    messages.append({"role": "user", "content": args.prompt})
    try:
        gen = engine.generation(engine.render(messages), params)
    except PromptTooLongError as exc:
        raise CliError(str(exc)) from None
    for event in gen:
        sys.stdout.write(event.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    n = len(gen.completion_ids)
    rate = n / gen.decode_s if gen.decode_s > 0 else float("nan")
    print(f"[{n} tokens, {rate:.1f} tok/s, finish={gen.finish_reason}]", file=sys.stderr)
    return 0
