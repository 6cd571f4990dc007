"""SAE training for the guard pack: corpus, activation cache, training, evaluation, features.

Nothing is imported eagerly; use the submodules (``classifiers.sae.corpus`` etc.).
"""
