"""Dataset adapters, evaluation protocols and metrics."""
