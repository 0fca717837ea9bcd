"""What a model version was trained from, as one sha256: an identical retrain reuses the version.

The fingerprint covers everything that decides the fitted model and its report: the task (and
product, renewal-only), the labelled rows of every part of the split (their content, so a
changed raw table or a rebuilt snapshot with other values counts, a rewritten file with the
same values does not), the settings that shape features, labels and fits, the feature
catalogue's version and the code's version (the git ids of ``features/``, ``training/`` and the
lock file, with a digest of their uncommitted changes; the package version outside a git
checkout).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

#: What the code version covers: the packages that build features and fit, and the lock file.
CODE = ("features", "training", "pyproject.toml", "uv.lock")

#: Settings that do not change what is fitted: where things are, how fast, and the gate.
NOT_FITTING = frozenset({
    "data_dir", "mlflow_tracking_uri", "audit_log_path", "duckdb_threads",
    "duckdb_memory_limit", "build_workers", "spark_master", "spark_conf",
    "promotion_max_ece_increase", "promotion_auc_margin",
})


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's columns, dtypes and values (row order counts, the index does not)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def code_version(root: Path | None = None) -> str:
    """The git ids of what trains (``features/``, ``training/`` and the locked dependencies),
    plus a digest of their uncommitted changes; the installed package's version when this is
    not a git checkout. A commit that touches only the docs, the tests or serving keeps it."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        ids = _git(root, "rev-parse", *[f"HEAD:{path}" for path in CODE]).split()
        diff = _git(root, "diff", "HEAD", "--binary", "--", *CODE)
    except (OSError, subprocess.CalledProcessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"package {version('propensity')}"
        except PackageNotFoundError:
            return "unknown"
    found = hashlib.sha256(" ".join(ids).encode()).hexdigest()[:40]
    if diff:
        found += "+" + hashlib.sha256(diff.encode()).hexdigest()[:16]
    return found


def fingerprint(
    *,
    task: str,
    options: Mapping[str, object],
    settings: Mapping[str, object],
    parts: Mapping[str, pd.DataFrame | str],
    catalogue: str,
    code: str,
) -> str:
    """sha256 over the task and its ``options``, the fitting ``settings`` (those in
    :data:`NOT_FITTING` left out), each part's :func:`frame_digest` (given as a string when
    the frame was digested before it was freed), the catalogue version and the ``code``
    version."""
    payload = {
        "task": task,
        "options": dict(options),
        "settings": {k: v for k, v in settings.items() if k not in NOT_FITTING},
        "parts": {name: frame if isinstance(frame, str) else frame_digest(frame)
                  for name, frame in sorted(parts.items())},
        "catalogue": catalogue,
        "code": code,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout
