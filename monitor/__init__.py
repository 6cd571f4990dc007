"""saeguard's runtime: model loading, the generation engine and its activation tap,
the policy engine, alert sinks, the HTTP sidecar and the CLI."""
