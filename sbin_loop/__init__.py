"""sbin: closed-loop active-learning discovery of materials with a Bayesian neural network surrogate."""

__version__ = "0.2.0"
