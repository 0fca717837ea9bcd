"""The pooled backtest's report: pooled metrics of every candidate with intervals, the paired
difference model - better baseline and its verdict (training.train.pool_backtest)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import evaluate
from training.train import pool_backtest


def pooled_rows(model_signal: float, seed: int = 0, accounts: int = 400) -> pd.DataFrame:
    """Two cut-offs of the same accounts: a label per row, a logistic baseline with signal 1
    and a health score with signal 0.5, and a model with ``model_signal``, sharing noise."""
    rng = np.random.default_rng(seed)
    ids = np.tile(np.arange(accounts), 2)
    y = (rng.random(2 * accounts) < 0.3).astype(int)
    noise = rng.normal(size=2 * accounts)

    def prob(signal):
        return 1 / (1 + np.exp(-(signal * y + noise + 0.3 * rng.normal(size=2 * accounts))))

    return pd.DataFrame({"account_id": ids, "label": y, "value": rng.random(2 * accounts),
                         "exposure": np.ones(2 * accounts), "model": prob(model_signal),
                         "logistic": prob(1.0), "health_score": prob(0.5)})


def cutoffs(frame: pd.DataFrame) -> list[dict]:
    half = len(frame) // 2
    return [{"test": f"2025-0{i + 1}-01", "rows_test": half} for i in range(2)]


def test_pooled_metrics_are_those_of_all_cutoffs_rows_together():
    frame = pooled_rows(2.0)
    report = pool_backtest(cutoffs(frame), frame, ["logistic", "health_score"], seed=1)
    pooled = report["pooled"]
    assert (pooled["rows"], pooled["accounts"]) == (800, 400)  # an account's rows together
    for cand in ("model", "logistic", "health_score"):
        want = evaluate(frame["label"], frame[cand], value=frame["value"],
                        exposure=frame["exposure"])
        assert pooled["metrics"][cand] == want
        assert pooled["intervals"][cand]["roc_auc"]["value"] == pytest.approx(want["roc_auc"])
    assert "400 accounts" in pooled["method"]
    assert report["best_baseline"] == "logistic"


@pytest.mark.parametrize(("signal", "verdict"), [
    (2.0, "the model beats the better baseline (logistic) by +"),
    (0.0, "the model loses to the better baseline (logistic) by -"),
    (1.0, "not distinguishable from the better baseline (logistic): "),
])
def test_the_verdict_follows_the_paired_interval(signal, verdict):
    frame = pooled_rows(signal)
    report = pool_backtest(cutoffs(frame), frame, ["logistic", "health_score"], seed=1)
    diff = report["versus_best_baseline"]
    assert report["verdict"].startswith(verdict)
    assert f"[{diff['lo']:+.4f}, {diff['hi']:+.4f}]" in report["verdict"]
    assert diff == report["pooled"]["differences"]["model - logistic"]["roc_auc"]
    if signal == 1.0:
        assert diff["lo"] < 0 < diff["hi"]


def test_a_candidate_missing_at_some_cutoff_is_left_out():
    frame = pooled_rows(2.0).assign(oracle=np.nan)
    frame.loc[:399, "oracle"] = 0.5
    report = pool_backtest(cutoffs(frame), frame, ["logistic", "health_score"], seed=1)
    assert set(report["pooled"]["metrics"]) == {"model", "logistic", "health_score"}
