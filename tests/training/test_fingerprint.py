"""What a version was trained from: the same inputs give the same fingerprint, any change that
shapes the fit gives another."""

from __future__ import annotations

import re
import subprocess

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


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def test_code_version_follows_the_code_that_trains_only(tmp_path):
    for path in ("features/a.py", "training/b.py", "pyproject.toml", "uv.lock", "docs/c.md"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    first = code_version(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", first)
    (tmp_path / "docs/c.md").write_text("2\n")
    git(tmp_path, "commit", "-qam", "docs only")
    assert code_version(tmp_path) == first
    (tmp_path / "training/b.py").write_text("2\n")
    uncommitted = code_version(tmp_path)
    assert re.fullmatch(first + r"\+[0-9a-f]{16}", uncommitted)
    git(tmp_path, "commit", "-qam", "training")
    assert code_version(tmp_path) not in (first, uncommitted)
    assert re.fullmatch(r"[0-9a-f]{40}(\+[0-9a-f]{16})?", code_version())  # this checkout
    outside = code_version(tmp_path / "docs" / "nowhere")
    assert outside == "unknown" or outside.startswith("package ")
