"""What a version was trained from: the same inputs give the same fingerprint, any change that
shapes the fit gives another."""

from __future__ import annotations

import re

import pandas as pd

from training.fingerprint import NOT_FITTING, code_version, fingerprint, frame_digest

PARTS = {"train": pd.DataFrame({"account_id": ["a", "b"], "x": [1.0, 2.0], "label": [0, 1]}),
         "test": pd.DataFrame({"account_id": ["c"], "x": [3.0], "label": [1]})}
SETTINGS = {"horizon_days": 90, "seed": 42, "data_dir": "/data", "promotion_auc_margin": 0.01}


def fp(**change) -> str:
    args = {"task": "churn", "options": {"product": None}, "settings": SETTINGS,
            "parts": PARTS, "catalogue": "abc123", "code": "deadbeef", **change}
    return fingerprint(**args)


def test_same_inputs_same_fingerprint():
    copies = {k: v.copy().set_axis(range(10, 10 + len(v))) for k, v in PARTS.items()}
    assert fp() == fp(parts=copies)  # the index does not count, the values do
    assert re.fullmatch(r"[0-9a-f]{64}", fp())


def test_data_settings_code_and_task_each_change_it():
    changed = {**PARTS, "train": PARTS["train"].assign(label=[1, 1])}
    assert fp(parts=changed) != fp()
    assert fp(parts={**PARTS, "train": PARTS["train"].astype({"x": "float32"})}) != fp()
    assert fp(settings={**SETTINGS, "horizon_days": 60}) != fp()
    assert fp(code="cafe") != fp()
    assert fp(catalogue="other") != fp()
    assert fp(task="upsell") != fp()
    assert fp(options={"product": "analytics"}) != fp()


def test_where_data_live_and_the_gate_do_not_change_it():
    assert {"data_dir", "promotion_auc_margin", "mlflow_tracking_uri"} <= NOT_FITTING
    assert fp(settings={**SETTINGS, "data_dir": "/elsewhere", "promotion_auc_margin": 0.5}) == fp()


def test_frame_digest_reads_values_and_columns():
    frame = PARTS["train"]
    assert frame_digest(frame) == frame_digest(frame.copy())
    assert frame_digest(frame) != frame_digest(frame.rename(columns={"x": "y"}))
    assert frame_digest(frame) != frame_digest(frame.iloc[::-1])


def test_code_version_is_the_commit_and_a_digest_of_uncommitted_changes(tmp_path):
    assert re.fullmatch(r"[0-9a-f]{40}(\+[0-9a-f]{16})?", code_version())
    outside = code_version(tmp_path)  # not a git checkout
    assert outside == "unknown" or outside.startswith("package ")
