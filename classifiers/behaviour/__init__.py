"""Probe training data from the model's own context and behaviour (issue: probes that
generalise): instructed pairs (the same true statement under an honest vs a deceptive
instruction, read on the response tokens) and on-policy labels (the model's own answers:
does it abandon a correct answer when the user pushes back?)."""
