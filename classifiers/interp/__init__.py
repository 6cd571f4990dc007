"""Interpretability toolkit over a guard pack's SAE: feature search (examples, contrastive,
neighbours, attribution, probe weights), intervention studies (saturation sweep, ablation,
specificity), contrastive steering, activation patching and the logit lens.

One small module per concept; nothing is imported or loaded here. Interventions come from
:mod:`monitor.guard.interventions` (the API the policy engine uses too).
"""
