"""``saeguard policy``: check, test and export the schema of policy files.

- ``policy check FILE... [--pack DIR]``: exit 0 when every file is valid, 1 otherwise;
  each problem is printed as ``FILE:LINE: field.path: what was expected``. With ``--pack``,
  valid but questionable uses of calibrated thresholds (another window than the probe was
  calibrated with, prompt scope) are printed to stderr as
  ``FILE:LINE: field.path: warning: ...`` and do not change the exit status.
- ``policy test FILE --cases CASES.yaml [--pack DIR] [--format table|jsonl]``: run the
  policy over recorded per-token scores and print which rules fire, at which token.
- ``policy schema [--out FILE] [--check]``: write (or verify) ``policies/schema.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitor.cli import CliError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="check, test and export policy files")
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="validate policy files")
    check.add_argument("files", nargs="+", metavar="FILE", help="policy YAML file(s)")
    check.add_argument(
        "--pack",
        metavar="DIR",
        help="guard pack directory to check probe names, calibrated rates and feature ids "
        "against (without it only the file's own structure is checked)",
    )
    check.set_defaults(func=cmd_check)

    test = sub.add_parser("test", help="run a policy over recorded score sequences")
    test.add_argument("file", metavar="FILE", help="policy YAML file")
    test.add_argument("--cases", required=True, metavar="CASES", help="cases YAML file")
    test.add_argument(
        "--pack", metavar="DIR", help="guard pack directory (else the cases file's pack:)"
    )
    test.add_argument("--format", choices=("table", "jsonl"), default="table")
    test.set_defaults(func=cmd_test)

    schema = sub.add_parser("schema", help="write the policy JSON schema")
    schema.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    schema.add_argument(
        "--check", action="store_true", help="exit 1 if --out differs from the generated schema"
    )
    schema.set_defaults(func=cmd_schema)


def _pack(pack_dir: str | None) -> Any:
    if pack_dir is None:
        return None
    from monitor.policy.packinfo import PackInfoError, load_pack_info

    try:
        return load_pack_info(pack_dir)
    except PackInfoError as exc:
        raise CliError(str(exc)) from exc


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc


def cmd_check(args: argparse.Namespace) -> int:
    from monitor.policy.loader import (
        check_policy_text,
        load_policy_text,
        policy_version,
        policy_warnings_text,
    )

    pack = _pack(args.pack)
    if pack is None:
        print(
            "note: no --pack given: probe names, calibrated rates and feature ids are not checked",
            file=sys.stderr,
        )
    failed = False
    for path in args.files:
        raw = _read(path)
        issues = check_policy_text(raw, pack, source=path)
        if issues:
            failed = True
            for issue in issues:
                print(issue)
        elif pack is not None:
            policy = load_policy_text(raw, pack, source=path)
            print(
                f"{path}: ok (policy {policy.name}, {policy.mode}, {len(policy.rules)} enabled rules, version {policy.version[:12]})"
            )
        else:
            print(f"{path}: ok (version {policy_version(raw)[:12]})")
        # warnings (stderr, exit status unchanged): calibrated thresholds read through
        # another window than the one they were calibrated with, or on prompt tokens
        sys.stdout.flush()
        for warning in policy_warnings_text(raw, pack, source=path):
            print(warning, file=sys.stderr)
    return 1 if failed else 0


def cmd_test(args: argparse.Namespace) -> int:
    from monitor.policy.cases import load_cases, run_cases
    from monitor.policy.issues import PolicyError
    from monitor.policy.loader import load_policy_text

    try:
        cases = load_cases(args.cases)
    except OSError as exc:
        raise CliError(f"cannot read {args.cases}: {exc.strerror or exc}") from exc
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue)
        return 1
    pack = _pack(args.pack)
    if pack is None:
        if cases.pack is None:
            raise CliError("no pack: give --pack DIR or a pack: section in the cases file")
        pack = cases.pack.to_pack_info()
    try:
        policy = load_policy_text(_read(args.file), pack, source=args.file)
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue)
        return 1
    results = run_cases(policy, cases.cases)
    if args.format == "jsonl":
        _print_jsonl(results)
    else:
        _print_table(policy, results)
    return 1 if any(r.passed is False for r in results) else 0


def _print_jsonl(results: list[Any]) -> None:
    for result in results:
        for f in result.firings:
            print(
                json.dumps(
                    {
                        "case": f.case,
                        "rule": f.rule,
                        "token_index": f.token_index,
                        "token": f.token,
                        "actions": list(f.actions),
                        "probe": f.probe,
                        "score": f.score,
                        "threshold": f.threshold,
                    }
                )
            )
        summary: dict[str, Any] = {
            "case": result.name,
            "fired": len(result.firings),
            "stopped_at": result.stopped_at,
        }
        if result.passed is not None:
            summary.update(
                passed=result.passed,
                missing=[list(m) for m in result.missing],
                unexpected=[list(u) for u in result.unexpected],
            )
        print(json.dumps({"summary": summary}))


def _print_table(policy: Any, results: list[Any]) -> None:
    print(f"policy {policy.name} ({policy.mode}, version {policy.version[:12]})")
    for result in results:
        verdict = {None: "", True: "  [expect: ok]", False: "  [expect: FAILED]"}[result.passed]
        print(f"\ncase: {result.name}{verdict}")
        if not result.firings:
            print("  (no rule fired)")
        else:
            print(
                f"  {'token':>5}  {'rule':<28} {'probe':<14} {'score':>6} {'thresh':>6}  actions   (token text)"
            )
        for f in result.firings:
            score = "" if f.score is None else f"{f.score:.3f}"
            thr = "" if f.threshold is None else f"{f.threshold:.3f}"
            print(
                f"  {f.token_index:>5}  {f.rule:<28} {f.probe:<14} {score:>6} {thr:>6}  {','.join(f.actions)}   ({f.token!r})"
            )
        if result.stopped_at is not None:
            print(f"  response stopped at token {result.stopped_at}")
        for rule, index in result.missing:
            print(f"  expected but did not fire: {rule} at token {index}")
        for rule, index in result.unexpected:
            print(f"  fired but not expected: {rule} at token {index}")


def cmd_schema(args: argparse.Namespace) -> int:
    from monitor.policy.schema import policy_json_schema_text

    text = policy_json_schema_text()
    if args.check:
        if not args.out:
            raise CliError("--check needs --out FILE")
        current = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run `saeguard policy schema --out {args.out}`")
            return 1
        print(f"{args.out}: up to date")
        return 0
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
