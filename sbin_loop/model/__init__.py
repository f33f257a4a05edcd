"""The surrogate model: variational BNN, its BoTorch wrapper, Monte Carlo intervals and checkpoints."""
