"""Report figures: each writes a real PNG of a sensible size where it was asked to."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR is the first chunk, right after the
    8-byte signature, 4-byte length and 4-byte type)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_png(path: Path, min_size: tuple[int, int] = (500, 250)) -> None:
    assert path.is_file()
    assert path.stat().st_size > 5_000  # axes, labels and curves, not a blank canvas
    width, height = png_size(path)
    assert min_size[0] <= width <= 2000
    assert min_size[1] <= height <= 2000


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x - 1.5)))).astype(int)
    p = 1 / (1 + np.exp(-(2 * x - 1.5)))
    return y, p, x


def test_roc_pr_curves_into_a_directory(tmp_path, scored):
    y, p, x = scored
    rng = np.random.default_rng(1)
    out = plots.roc_pr_curves(
        y, {"lightgbm": p, "logistic": x + rng.normal(size=len(x)), "health score": -x}, tmp_path
    )
    assert out == tmp_path / "roc_pr.png"
    assert_png(out)
    assert png_size(out) == (1200, 520)  # 12 x 5.2 inches at 100 dpi, two panels side by side


def test_calibration_curve_to_a_named_file_in_a_new_folder(tmp_path, scored):
    y, p, _ = scored
    target = tmp_path / "artifacts" / "cal.png"
    out = plots.calibration_curve(y, p**3, p, target)
    assert out == target
    assert_png(out)


def test_lift_gain_chart(tmp_path, scored):
    y, p, _ = scored
    out = plots.lift_gain_chart(y, p, tmp_path)
    assert out.name == "lift_gain.png"
    assert_png(out)


def test_feature_importance_keeps_the_top_features(tmp_path):
    names = [f"feature_{i}" for i in range(40)]
    gains = np.arange(40, dtype=float)
    out = plots.feature_importance(names, gains, tmp_path, top=25)
    assert_png(out, min_size=(500, 400))
    # Height grows with the bars drawn (25, not 40): 1.2 + 0.32 * 25 inches at 100 dpi.
    assert png_size(out) == (800, 920)


def test_shap_summary_with_missing_and_categorical_values(tmp_path):
    rng = np.random.default_rng(2)
    n, names = 300, ["usage_30d", "nps", "segment"]
    values = pd.DataFrame(
        {
            "usage_30d": rng.gamma(2, 10, n),
            "nps": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 11, n)),
            "segment": pd.Series(rng.choice(["smb", "mid", "ent"], n), dtype="string"),
        }
    )
    contrib = np.column_stack(
        [
            -0.05 * (values["usage_30d"] - 20),
            -0.1 * (values["nps"].fillna(5) - 5),
            rng.normal(0, 0.1, n),
            np.full(n, -2.0),  # bias column
        ]
    )
    out = plots.shap_summary(names, contrib, values, tmp_path, top=20)
    assert out.name == "shap_summary.png"
    assert_png(out)


def test_value_rank_colours_low_to_high_and_greys_missing():
    got = plots._value_rank(pd.Series([0.0, 0.0, 5.0, 10.0, np.nan]))
    # Ties take the lowest rank: ranks 1, 1, 3, 4 -> (r - 1) / 3.
    assert got[:4] == pytest.approx([0, 0, 2 / 3, 1])
    assert np.isnan(got[4])
    assert np.isnan(plots._value_rank(pd.Series(["a", "b"], dtype="string"))).all()
    assert plots._value_rank(pd.Series([3.0, 3.0])) == pytest.approx([0.5, 0.5])


def test_bad_input_is_refused(tmp_path, scored):
    y, p, _ = scored
    with pytest.raises(ValueError, match="n x 3"):
        plots.shap_summary(["a", "b"], np.zeros((5, 2)), pd.DataFrame({"a": [0] * 5}), tmp_path)
    with pytest.raises(ValueError, match="lacks columns"):
        plots.shap_summary(["a", "b"], np.zeros((5, 3)), pd.DataFrame({"a": [0] * 5}), tmp_path)
    with pytest.raises(ValueError, match="single class"):
        plots.lift_gain_chart(np.zeros(10), np.linspace(0, 1, 10), tmp_path)
    with pytest.raises(ValueError, match="shape"):
        plots.calibration_curve(y, p, p[:-1], tmp_path)
    with pytest.raises(ValueError, match="gains"):
        plots.feature_importance(["a", "b"], np.ones(3), tmp_path)
    with pytest.raises(ValueError, match="empty"):
        plots.roc_pr_curves(y, {}, tmp_path)
    assert list(tmp_path.iterdir()) == []
