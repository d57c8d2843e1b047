"""causalwatch trainer: the causal-structure model, its training loop and health metrics."""
