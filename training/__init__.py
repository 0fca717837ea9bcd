"""training layer (built by a later issue)."""
