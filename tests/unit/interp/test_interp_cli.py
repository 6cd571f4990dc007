"""The interp commands are registered next to ``features show``, parse, and fail with one
line (exit 2) before loading anything when the pack, SAE or probes are missing; the
specificity bench says so in one line too."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import build_parser, main

REPO = Path(__file__).resolve().parents[3]


def test_commands_are_registered_alongside_features_show():
    parser = build_parser()
    args = parser.parse_args(["features", "show", "3"])
    assert args.func.__name__ == "run_features_show"
    for argv, fn in [
        (["features", "search", "--prompt", "x"], "run_search"),
        (["features", "contrast", "--pos", "a", "--neg", "b"], "run_contrast"),
        (["features", "neighbours", "7"], "run_neighbours"),
        (["features", "attribute", "--prompt", "x", "--target", " sad", "--foil", " happy"], "run_attribute"),
        (["features", "from-probe", "deception"], "run_from_probe"),
        (["steer", "sweep", "--feature", "3", "--values", "0,1,5", "--prompt", "x"], "run_sweep"),
        (["steer", "ablate", "--features", "1,2", "--prompts", "f.txt"], "run_ablate"),
        (["steer", "specificity", "--concept", "bias"], "run_specificity"),
        (["steer", "contrastive", "--pairs", "p.jsonl"], "run_contrastive"),
        (["diag", "patch", "--clean", "a", "--corrupted", "b", "--target", "x", "--foil", "y"], "run_patch"),
        (["diag", "logit-lens", "--prompt", "x"], "run_logit_lens"),
    ]:
        assert parser.parse_args(argv).func.__name__ == fn, argv
    assert parser.parse_args(["features", "attribute", "--prompt", "x", "--target", "a", "--foil", "b"]).chat is False
    assert parser.parse_args(["features", "search", "--prompt", "x"]).chat is True


@pytest.mark.parametrize("argv, message", [
    (["features", "neighbours", "3", "--pack", "/nonexistent/pack"], "guard pack not found"),
    (["steer", "sweep", "--feature", "3", "--prompt", "x", "--sae", "/nonexistent/sae"], "neither a directory"),
])
def test_missing_pack_or_sae_is_a_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_bench_fails_in_one_line_without_probes(tmp_path):
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps({}))
    proc = subprocess.run([sys.executable, str(REPO / "ops" / "bench" / "specificity.py"), "--pack", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "probes.json is missing" in proc.stderr
    proc = subprocess.run([sys.executable, str(REPO / "ops" / "bench" / "specificity.py"), "--pack", str(tmp_path / "x")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "not trained yet" in proc.stderr


def test_prompt_files(tmp_path):
    from classifiers.interp.prompts import PromptFileError, read_pairs, read_prompts

    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    assert read_prompts(tmp_path / "a.txt") == ["one", "two"]
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert read_prompts(tmp_path / "b.jsonl") == ["x", [{"role": "user", "content": "hi"}]]
    (tmp_path / "p.jsonl").write_text('{"pos": "good", "neg": "bad"}\n{"pos": "x"}\n')
    with pytest.raises(PromptFileError, match=r"p.jsonl:2"):
        read_pairs(tmp_path / "p.jsonl")


def test_content_start_skips_the_chat_template():
    from classifiers.interp.prompts import content_start, to_ids
    from tests.toymodel import ToyTokenizer

    tok = ToyTokenizer()  # no chat template: "User: ...\nAssistant:" (letters only)
    ids = to_ids(tok, "xyz", chat=True)
    start = content_start(tok, "xyz", chat=True)
    assert start == 4 and ids[start:start + 3] == tok("xyz")["input_ids"]
    assert content_start(tok, "abc", chat=False) == 0
