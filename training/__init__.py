"""Training layer: labels, datasets, time splits, LightGBM + calibration, baselines, evaluation,
MLflow runs and the champion/challenger gate (``train``), and bring-your-own-table models
(``tabular``). Imports ``features``; never ``serving`` nor ``simulator``."""
