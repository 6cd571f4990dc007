"""The web console's pieces that need no browser: the page's scripts never turn data into
HTML, features.json examples are split at their activating token, and the feature maths
(decoder neighbours, logit effects) on hand-set weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from monitor.server.ui.featurebook import FeatureBook, decoder_neighbours, logit_effects

STATIC = Path(__file__).resolve().parents[3] / "monitor" / "server" / "ui" / "static"
HTML_SINKS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc")


def test_the_console_scripts_never_parse_data_as_html() -> None:
    scripts = sorted(STATIC.glob("*.js"))
    assert len(scripts) >= 5
    found = [f"{p.name}:{n}: {line.strip()}" for p in scripts
             for n, line in enumerate(p.read_text().splitlines(), 1) if HTML_SINKS.search(line)]
    assert found == []
    page = (STATIC / "index.html").read_text()
    # every script is a file (the CSP forbids inline code); no inline event handlers
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert re.findall(r"\son[a-z]+=", page) == []
    for src in re.findall(r'src="/ui/static/([^"]+)"', page):
        assert (STATIC / src).is_file(), src


def _book(tmp_path: Path) -> FeatureBook:
    doc = {"features": {
        "3": {"label": "tokens: uid", "density": 0.01, "top_contexts": [
            {"activation": 9.5, "text": "caller_\u00abuid\u00bb);", "token": "uid"},
            {"activation": 1.0, "text": "no marks here", "token": "x"}]},
        "12": {"label": "tokens: fluid", "density": 0.2},
        "40": {"label": "code: <script>", "density": 0.3}}}
    (tmp_path / "features.json").write_text(json.dumps(doc))
    return FeatureBook(tmp_path)


def test_examples_are_split_at_the_activating_token(tmp_path: Path) -> None:
    examples = _book(tmp_path).examples(3)
    assert examples[0] == {"activation": 9.5, "before": "caller_", "token": "uid", "after": ");"}
    assert examples[1] == {"activation": 1.0, "before": "no marks here", "token": "", "after": ""}
    assert _book(tmp_path).examples(999) == []


def test_search_matches_an_id_or_label_text(tmp_path: Path) -> None:
    book = _book(tmp_path)
    total, page = book.search("uid", 0, 10)
    assert total == 2 and [f.id for f in page] == [3, 12]
    assert [f.id for f in book.search("40", 0, 10)[1]] == [40]
    total, page = book.search("", 1, 1)
    assert total == 3 and [f.id for f in page] == [12]
    assert book.label(40) == "code: <script>" and book.label(5) == ""


def test_decoder_neighbours_rank_by_cosine() -> None:
    W_dec = torch.tensor([[1.0, 0.0, 0.0], [5.0, 0.1, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    found = decoder_neighbours(W_dec, 0, k=3)
    assert [fid for fid, _ in found] == [1, 2, 3]
    assert found[0][1] > 0.99 and found[2][1] == -1.0


def test_logit_effects_apply_the_final_norm_scale() -> None:
    W_U = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])  # d_model 2, vocab 3
    names = {0: "a", 1: "b", 2: "c"}
    plain = logit_effects(torch.tensor([1.0, 0.0]), W_U, None, names.__getitem__, k=1)
    assert plain == {"up": [("a", 1.0)], "down": [("c", -1.0)]}
    scaled = logit_effects(torch.tensor([1.0, 1.0]), W_U, torch.tensor([0.1, 1.0]), names.__getitem__, k=1)
    assert scaled["up"] == [("b", 2.0)]
