"""Loading for the interpretability commands (``classifiers.cli.interp``): model, SAE, feature
evidence and probes from a guard pack (or an SAE given directly), prompts from flags/files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PACK = "classifiers/packs/smollm2-135m-instruct"


def add_common(p: argparse.ArgumentParser, probes: bool = False) -> None:
    p.add_argument("--pack", default=DEFAULT_PACK, help=f"guard pack directory (default {DEFAULT_PACK})")
    p.add_argument("--sae", default=None,
                   help="SAE spec overriding the pack's (a SAELens directory or saelens:<release>/<id>); "
                        "feature evidence then comes only from --features-json")
    p.add_argument("--features-json", default=None, help="features.json to take evidence from (default: the pack's)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    if probes:
        p.add_argument("--probes-dir", default=None, help="probes directory (default: <pack>/probes)")


def add_prompts(p: argparse.ArgumentParser, chat_default: bool, file_flag: str = "--prompts") -> None:
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument(file_flag, dest="prompt_file", default=None, help="prompt file (.txt lines or .jsonl)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--chat", dest="chat", action="store_true", default=chat_default,
                   help="render string prompts as a user turn with the chat template"
                        + (" (default)" if chat_default else ""))
    g.add_argument("--raw", dest="chat", action="store_false",
                   help="tokenize string prompts as raw text" + ("" if chat_default else " (default)"))


@dataclass
class Context:
    lm: Any
    sae: Any
    hook_name: str
    features: dict[str, Any]
    pack_root: Path | None
    probes_json: dict[str, Any] | None
    special_ids: frozenset[int]

    def decode(self, tid: int) -> str:
        return str(self.lm.tokenizer.decode([int(tid)]))

    def setup(self) -> Any:
        from classifiers.interp.studies.common import Setup
        from monitor.engine import Engine

        return Setup(self.lm.model, Engine.from_loaded(self.lm), self.sae, self.hook_name, self.special_ids)

    def probe_head(self, name: str, probes_dir: str | None = None) -> Any:
        from classifiers.interp.studies.common import ProbeHead
        from monitor.cli import CliError

        pdir = Path(probes_dir) if probes_dir else (self.pack_root / "probes" if self.pack_root else None)
        if pdir is None or not (pdir / "probes.json").is_file():
            raise CliError(f"no probes: {pdir or '<pack>'}/probes.json is missing (the pack's probes are not "
                           "trained yet; pass --probes-dir)")
        pj = json.loads((pdir / "probes.json").read_text(encoding="utf-8"))
        try:
            return ProbeHead.from_pack(pdir, name, int(self.sae.cfg.d_sae)), pj
        except (KeyError, ValueError) as exc:
            raise CliError(str(exc.args[0])) from None


def load_context(args: argparse.Namespace, need_sae: bool = True) -> Context:
    import torch

    from monitor.cli import CliError
    from monitor.model import ModelSpecError, load_model
    from monitor.pack import PackError, load_pack
    from monitor.sae_spec import SAESpecError, load_sae

    torch.set_num_threads(max(1, args.threads))
    pack_root = Path(args.pack) if args.pack and Path(args.pack).is_dir() else None
    features: dict[str, Any] = {}
    probes_json = None
    pack = None
    sae = None
    hook = ""
    if args.sae:
        try:
            sae = load_sae(args.sae) if need_sae else None
        except SAESpecError as exc:
            raise CliError(str(exc)) from None
    elif pack_root is None:
        raise CliError(f"guard pack not found: {args.pack} (train it, or pass --sae DIR)")
    else:
        try:
            pack = load_pack(pack_root, with_sae=need_sae)
        except PackError as exc:
            raise CliError(str(exc)) from None
        sae, features = pack.sae, pack.features
        probes_json = None if pack.probes is None else pack.probes.doc
        hook = pack.hook_name if need_sae else ""
    if args.features_json:
        path = Path(args.features_json)
        if not path.is_file():
            raise CliError(f"features file not found: {path}")
        features = json.loads(path.read_text(encoding="utf-8"))
    if args.sae and sae is not None:
        hook = str(getattr(sae.cfg.metadata, "hook_name", None) or "")
    if sae is not None and not hook:
        raise CliError("the SAE's cfg.json names no hook point (metadata.hook_name)")
    try:
        if pack is not None:
            pack.check_model_spec(args.model)
        lm = load_model(args.model)
        if pack is not None:
            pack.check_model(lm.spec, lm.weights_sha256)
    except (ModelSpecError, PackError) as exc:
        raise CliError(str(exc)) from None
    from classifiers.interp.runtime import special_ids_of

    return Context(lm, sae, hook, features, pack_root, probes_json, special_ids_of(lm.tokenizer))


def read_prompt_items(args: argparse.Namespace, what: str = "prompt") -> list[Any]:
    """The raw prompts (strings or chats) from --prompt flags and the prompt file."""
    from classifiers.interp.prompts import PromptFileError, read_prompts
    from monitor.cli import CliError

    items: list[Any] = list(args.prompt)
    if args.prompt_file:
        try:
            items += read_prompts(args.prompt_file)
        except PromptFileError as exc:
            raise CliError(str(exc)) from None
    if not items:
        raise CliError(f"no {what}s: pass --prompt TEXT or a file")
    return items


def read_prompt_list(args: argparse.Namespace, tokenizer: Any, what: str = "prompt") -> list[tuple[str, list[int]]]:
    """(label, token ids) for --prompt flags and the prompt file."""
    from classifiers.interp.prompts import label, to_ids

    return [(label(p), to_ids(tokenizer, p, args.chat)) for p in read_prompt_items(args, what)]


def encode_items(ctx: Any, items: list[Any], chat: bool) -> list[Any]:
    """Encode prompts at the SAE hook; statistics skip the chat template (system prompt)."""
    from classifiers.interp.prompts import content_start, to_ids
    from classifiers.interp.runtime import encode_prompts

    tok = ctx.lm.tokenizer
    ids = [to_ids(tok, p, chat) for p in items]
    starts = [content_start(tok, p, chat) for p in items]
    return encode_prompts(ctx.lm.model, ctx.sae, ctx.hook_name, ids, ctx.special_ids, starts)


def emit(args: argparse.Namespace, payload: dict[str, Any], lines: list[str]) -> None:
    """--json: the payload; otherwise the human lines."""
    if getattr(args, "json", False):
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))


def out_path(args: argparse.Namespace, name: str) -> Path:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out / name
