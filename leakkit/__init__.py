"""leakkit."""
