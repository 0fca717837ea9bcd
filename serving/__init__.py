"""Serving layer: the scoring API, ranked lists, the account managers' page and batch scoring;
models come from MLflow by alias. Imports ``features``; never ``training`` nor ``simulator``."""
