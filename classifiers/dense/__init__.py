"""Dense residual probes: pooled residual-stream features at several layers, linear probes
per layer and across layers, evaluated on sources they never trained on."""
