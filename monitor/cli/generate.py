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
    p.add_argument("--weights", default="auto", choices=["auto", "fp32", "bf16", "int4"],
                   help="the fast path's weight format (default auto: with --pack, the fastest format that passes "
                        "the pack's quality gates on a CPU; fp32 without one; README \"Weight formats\")")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("generate", help="generate an answer to a prompt, streamed to the terminal")
    p.add_argument("prompt", help="the user message")
    p.add_argument("--system", default=None, help="system prompt (default: the model's own)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--pack", default=None, metavar="DIR",
                   help="guard pack: stream each token with its concept scores (a pack built for --model)")
    p.add_argument("--policy", default=None, metavar="FILE",
                   help="policy to apply with --pack (default: none, scores only); alerts are printed, not sent")
    add_model_args(p)
    p.set_defaults(func=run)


def load_engine(args: argparse.Namespace, pack: Any = None) -> Any:
    """Load the model named by ``--model`` into an Engine; one-line errors on failure.
    ``--weights auto`` runs the pack's gated format (:func:`resolve_weight_format`), fp32
    without a pack."""
    import torch

    from monitor.cli import CliError
    from monitor.engine import Engine
    from monitor.engine.weights import WeightFormatError, check_format
    from monitor.model import ModelSpecError, load_model
    from monitor.pack.loader import resolve_weight_format

    torch.set_num_threads(max(1, args.threads))
    try:
        lm = load_model(args.model, device=args.device)
    except ModelSpecError as exc:
        raise CliError(str(exc)) from None
    try:
        weights = resolve_weight_format(getattr(args, "weights", "auto"), str(lm.device),
                                        pack.manifest.weights if pack is not None else None)
        return lm, Engine.from_loaded(lm, weights=check_format(weights, lm.device))
    except WeightFormatError as exc:
        raise CliError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from monitor.cli import CliError
    from monitor.engine import PromptTooLongError, SamplingParams

    try:
        params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature,
                                top_p=args.top_p, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.policy and not args.pack:
        raise CliError("--policy needs --pack (the policy's probes and features live in a guard pack)")
    pack, policy = _pack_and_policy(args) if args.pack else (None, None)
    lm, engine = load_engine(args, pack)
    messages = ([{"role": "system", "content": args.system}] if args.system else [])
    messages.append({"role": "user", "content": args.prompt})
    if pack is not None:
        return _run_scored(lm, engine, pack, policy, messages, params)
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


def _pack_and_policy(args: argparse.Namespace) -> tuple[Any, Any]:
    """The pack (read once; SAE weights later) and the policy checked against it, before
    the model loads: a missing pack, one built for another model, or an invalid policy is
    refused without waiting for the weights."""
    from monitor.cli import CliError
    from monitor.pack import PackError, load_pack
    from monitor.policy import PolicyError
    from monitor.policy.loader import load_policy_text

    try:
        pack = load_pack(args.pack, with_sae=False)
        pack.check_model_spec(args.model)
    except PackError as exc:
        raise CliError(f"guard pack: {exc}") from None
    text = "name: scores-only\nmode: enforce\non_monitor_error: fail_closed\nrules: []\n"
    source = "<scores only>"
    if args.policy:
        try:
            with open(args.policy, encoding="utf-8") as f:
                text, source = f.read(), args.policy
        except OSError as exc:
            raise CliError(f"cannot read policy {args.policy}: {exc}") from None
    try:
        policy = load_policy_text(text, pack.info, source=source)
    except PolicyError as exc:
        raise CliError(f"policy {source} is invalid:\n{exc}") from None
    return pack, policy


def _run_scored(lm: Any, engine: Any, pack: Any, policy: Any, messages: list[dict[str, str]], params: Any) -> int:
    """One line per response token: the token, then each concept's probe score at it, and
    the rules that fired there (``--policy``); alerts are listed at the end, not published."""
    from monitor.cli import CliError
    from monitor.engine import PromptTooLongError
    from monitor.guard import Guard
    from monitor.guard.guard import scope_by_prompt_length
    from monitor.pack import PackError

    try:
        pack.check_model(lm.spec, lm.weights_sha256)  # hf: specs are only known once loaded
        pack = pack.with_sae(device=str(lm.model.cfg.device))
    except PackError as exc:
        raise CliError(f"guard pack: {exc}") from None
    guard = Guard.from_pack(pack, lm.tokenizer, model_spec=lm.spec)
    alerts: list[Any] = []
    prompt = engine.render(messages)
    session = guard.session(policy, "cli", publish=alerts.append, scope_of=scope_by_prompt_length(len(prompt)))
    names = list(guard.probes.names)
    print("token".ljust(16) + "".join(n[:11].rjust(12) for n in names) + "  rules", file=sys.stdout)
    try:
        with guard.attach(lm.model, session) as tap:
            gen = engine.generation(prompt, params, taps=[tap], request_id="cli")
            for _event in gen:
                for r in session.take_reports():
                    if r.scope != "response":
                        continue
                    fired = ",".join(r.fired)
                    print(repr(r.token)[:15].ljust(16) + "".join(f"{r.scores.get(n, float('nan')):12.3f}" for n in names)
                          + (f"  {fired}" if fired else ""), flush=True)
    except PromptTooLongError as exc:
        raise CliError(str(exc)) from None
    session.finish()  # end-of-response verdicts (at: response_end) are read now
    print(f"\n{engine.tokenizer.decode(gen.completion_ids, skip_special_tokens=True)}")
    for a in alerts:
        print(f"[alert {a.rule_id}] {a.concept} {a.score:.3f} >= {a.threshold:.3f} at token {a.token_index} "
              f"({a.action})", file=sys.stderr)
    print(f"[{len(gen.completion_ids)} tokens, finish={gen.finish_reason}, {len(alerts)} alerts]", file=sys.stderr)
    return 0
