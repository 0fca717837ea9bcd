"""serving layer (built by a later issue)."""
