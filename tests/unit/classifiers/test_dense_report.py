"""The dense-study report marks a goal only when every part of it is met."""

from classifiers.dense.report import best_rows, meets_goal, render_summary, render_table


def row(concept, framing, held, base=0.5):
    return {"concept": concept, "framing": framing, "kind": "k", "layers": "14", "pooling": "mean", "train_n": 10,
            "in_source": {"auroc": 0.9}, "tfidf_in_source_auroc": 0.6,
            "held_out": {h: {"auroc": a, "ci95": [a - 0.05, a + 0.05], "tpr_at_1pct_fpr": t} for h, (a, t) in held.items()},
            "tfidf_held_out": {h: {"auroc": base} for h in held}}


def test_goal_needs_auroc_tpr_and_margin_over_the_text_baseline():
    assert meets_goal("sycophancy", {"auroc": 0.86, "tpr_at_1pct_fpr": 0.5}, {"auroc": 0.60})
    assert not meets_goal("sycophancy", {"auroc": 0.86, "tpr_at_1pct_fpr": 0.49}, {"auroc": 0.60})
    assert not meets_goal("sycophancy", {"auroc": 0.86, "tpr_at_1pct_fpr": 0.9}, {"auroc": 0.62})
    assert not meets_goal("deception", {"auroc": 0.89, "tpr_at_1pct_fpr": 0.9}, {"auroc": 0.5})


def test_best_row_per_concept_and_the_tables_say_what_was_met():
    rows = [row("deception", "a", {"x": (0.95, 0.7), "y": (0.70, 0.1)}),
            row("deception", "b", {"x": (0.80, 0.2), "y": (0.80, 0.2)}),
            row("bias", "c", {"w": (0.95, 0.8)})]
    best = best_rows(rows)
    assert best["deception"]["framing"] == "b" and best["bias"]["framing"] == "c"
    summary = render_summary(rows)
    assert "| bias | c, layers 14, mean | w 0.950 | met" in summary
    assert "| deception | b" in summary and "not met" in summary
    table = render_table(rows)
    assert table.count("\n") == 2 + len(rows) and "0.950 [0.90, 1.00] / 0.80 ✓ (tf-idf 0.500)" in table
