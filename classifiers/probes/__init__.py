"""Linear probes over SAE (or residual) features: pure numpy / scikit-learn, no torch.

- :mod:`.train` -- ``train_probe(X, y, groups)`` -> ``ProbeFit`` (grouped-CV C, balanced
  classes, standardisation folded into the weights: ``sigmoid(x @ w + b)``).
- :mod:`.cv` -- grouped cross-validation used to choose C.
- :mod:`.calibrate` -- ``threshold_at_fpr(negatives, fpr)``; ``score >= t`` is positive.
- :mod:`.metrics` -- ``auroc``, ``auprc``, ``tpr_at_fpr``, ``summary``, ``roc_png``.
- :mod:`.baselines` -- TF-IDF + logistic regression on the assistant text.
- :mod:`.io` -- ``save_probes`` / ``load_probes`` (probes.safetensors + probes.json),
  ``top_features``, ``typical_activation``.
- :mod:`.external` -- ``read_external(path)`` for users' JSONL files and ``report``.

Submodules are imported explicitly (nothing here), so importing one does not pull in the
others' dependencies.
"""
