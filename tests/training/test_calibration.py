"""Calibration: repairs a deliberately miscalibrated score, stays monotone, survives JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from training.calibration import P_MAX, P_MIN, Calibrator, fit_calibrator, isotonic_wins
from training.metrics import expected_calibration_error


def cubed_case(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True probability p ~ Beta(1, 3); the model reports p ** 3 (far too low)."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(1, 3, n)
    y = (rng.random(n) < p_true).astype(int)
    return p_true**3, y, p_true


def tempered_case(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """True logit z; the model reports sigmoid(z / 2.5 + 1): a pure sigmoid distortion.

    Inverting it: z = 2.5 * logit(p_raw) - 2.5, so Platt scaling should find a = 2.5, b = -2.5.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.5, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return 1 / (1 + np.exp(-(z / 2.5 + 1.0))), y


def step_case(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Score uniform on [0, 1]; truth is a staircase (0.05 below 0.5, then 0.6, then 0.65),
    which no sigmoid of the logit follows."""
    rng = np.random.default_rng(seed)
    s = rng.random(n)
    p_true = np.where(s < 0.5, 0.05, np.where(s < 0.7, 0.6, 0.65))
    return s, (rng.random(n) < p_true).astype(int)


@pytest.mark.parametrize("method", ["auto", "isotonic", "sigmoid"])
def test_calibration_repairs_a_miscalibrated_model_on_held_out_rows(method):
    p_raw, y, p_true = cubed_case(seed=0, n=8000)
    fit, held = slice(0, 4000), slice(4000, None)
    calibrator, report = fit_calibrator(p_raw[fit], y[fit], method=method)
    p_cal = calibrator.predict(p_raw[held])

    ece_before = expected_calibration_error(y[held], p_raw[held])
    ece_after = expected_calibration_error(y[held], p_cal)
    assert ece_before > 0.15
    assert ece_after < 0.04
    assert ece_after < ece_before / 5
    brier_before = brier_score_loss(y[held], p_raw[held])
    brier_after = brier_score_loss(y[held], p_cal)
    brier_oracle = brier_score_loss(y[held], p_true[held])
    assert brier_after < brier_before - 0.04
    assert brier_after < brier_oracle + 0.003
    # The report's before / after figures on the slice tell the same story.
    assert report["ece_after"] < report["ece_before"] / 5
    assert report["brier_after"] < report["brier_before"]
    assert report["log_loss_after"] < report["log_loss_before"]


def test_sigmoid_recovers_the_temperature_and_shift():
    p_raw, y = tempered_case(seed=1, n=20_000)
    calibrator, _ = fit_calibrator(p_raw, y, method="sigmoid")
    assert calibrator.params["a"] == pytest.approx(2.5, abs=0.15)
    assert calibrator.params["b"] == pytest.approx(-2.5, abs=0.15)


def test_isotonic_hand_worked():
    # Pool adjacent violators on y = 0, 1, 0, 1: the middle pair pools to 0.5 -> 0, .5, .5, 1,
    # then clipped to [1e-6, 1 - 1e-6].
    calibrator, report = fit_calibrator(
        np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]), method="isotonic"
    )
    assert report["method"] == "isotonic"
    assert report["n_folds"] == 2  # only 2 positives: no more folds than the minority class
    got = calibrator.predict(np.array([0.0, 0.1, 0.15, 0.25, 0.4, 0.9]))
    # Below / above the thresholds: flat; between 0.1 and 0.2: linear from 1e-6 to 0.5.
    assert got == pytest.approx([P_MIN, P_MIN, (P_MIN + 0.5) / 2, 0.5, P_MAX, P_MAX], abs=1e-12)


def test_sigmoid_hand_worked():
    # a = 2, b = 0 at p = 0.2: logit = -ln 4, doubled -ln 16 -> 1 / (1 + 16) = 1/17.
    assert Calibrator("sigmoid", {"a": 2.0, "b": 0.0}).predict(np.array([0.2]))[0] == (
        pytest.approx(1 / 17)
    )
    # a = 1, b = 0 is the identity (inside the clip range).
    p = np.array([0.01, 0.2, 0.5, 0.9])
    assert Calibrator("sigmoid", {"a": 1.0, "b": 0.0}).predict(p) == pytest.approx(p)


def test_identity_returns_the_input():
    p = np.array([0.0, 0.3, 1.0])
    assert np.array_equal(Calibrator("identity").predict(p), p)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_probabilities_are_monotone_and_clipped(method):
    p_raw, y, _ = cubed_case(seed=2, n=3000)
    calibrator, _ = fit_calibrator(p_raw, y, method=method)
    grid = np.linspace(0, 1, 2001)
    out = calibrator.predict(grid)
    assert np.all(np.diff(out) >= 0)
    assert out.min() >= P_MIN
    assert out.max() <= P_MAX


def test_isotonic_matches_scikit_learn():
    from sklearn.isotonic import IsotonicRegression

    p_raw, y, _ = cubed_case(seed=3, n=2000)
    calibrator, _ = fit_calibrator(p_raw, y, method="isotonic")
    iso = IsotonicRegression(y_min=P_MIN, y_max=P_MAX, out_of_bounds="clip").fit(p_raw, y)
    grid = np.linspace(0, 1, 997)
    assert calibrator.predict(grid) == pytest.approx(iso.predict(grid), abs=1e-12)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid", "identity"])
def test_round_trip_through_json_gives_identical_predictions(method):
    p_raw, y, _ = cubed_case(seed=4, n=1500)
    calibrator, _ = fit_calibrator(p_raw, y, method=method)
    restored = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert restored.method == method
    grid = np.linspace(0, 1, 1001)
    assert np.array_equal(restored.predict(grid), calibrator.predict(grid))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_picks_sigmoid_for_a_sigmoid_distortion_on_few_rows(seed):
    # Over 20 seeds the CV log-loss margin for sigmoid was at least 0.058.
    p_raw, y = tempered_case(seed, n=300)
    _, report = fit_calibrator(p_raw, y, method="auto")
    assert report["method"] == "sigmoid"
    assert report["cv_log_loss_sigmoid"] < report["cv_log_loss_isotonic"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_picks_isotonic_for_a_staircase_on_many_rows(seed):
    # Over 20 seeds the CV log-loss margin for isotonic was at least 0.054.
    p_raw, y = step_case(seed, n=3000)
    _, report = fit_calibrator(p_raw, y, method="auto")
    assert report["method"] == "isotonic"
    assert report["cv_log_loss_isotonic"] < report["cv_log_loss_sigmoid"]
    # A calibrated score beats the raw one out of fold.
    assert report["cv_log_loss_isotonic"] < report["cv_log_loss_identity"]


def test_report_is_deterministic_and_json_serialisable():
    p_raw, y, _ = cubed_case(seed=5, n=1000)
    first = fit_calibrator(p_raw, y, seed=11)[1]
    assert fit_calibrator(p_raw, y, seed=11)[1] == first
    assert json.loads(json.dumps(first)) == first
    assert set(first) == {
        "method", "n", "positives", "n_folds",
        "cv_log_loss_isotonic", "cv_log_loss_sigmoid", "cv_log_loss_identity",
        "cv_isotonic_gain_se",
        "ece_before", "ece_after", "brier_before", "brier_after",
        "log_loss_before", "log_loss_after",
    }  # fmt: skip
    assert (first["n"], first["positives"], first["n_folds"]) == (1000, int(y.sum()), 5)


@pytest.mark.parametrize(
    ("p", "y", "kwargs", "message"),
    [
        ([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 1], {}, "at least 2 positives"),
        ([0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1], {}, "at least 2 positives"),
        ([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], {"method": "platt"}, "method"),
        ([0.1, 0.2, 1.3, 0.4], [0, 1, 0, 1], {}, r"\[0, 1\]"),
        ([0.1, 0.2, 0.3], [0, 1, 0, 1], {}, "equal length"),
        ([], [], {}, "empty"),
    ],
)
def test_bad_input_is_refused(p, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_calibrator(np.array(p, dtype=float), np.array(y), **kwargs)


def test_from_dict_refuses_a_non_monotone_map():
    with pytest.raises(ValueError, match="increasing"):
        Calibrator.from_dict({"method": "isotonic", "x": [0.1, 0.2], "y": [0.5, 0.4]})
    with pytest.raises(ValueError, match="method"):
        Calibrator.from_dict({"method": "beta"})


def test_isotonic_must_win_by_more_than_its_noise():
    """Its flat steps tie scores the model ranked apart, so a gain inside the noise keeps the
    strictly monotone sigmoid. Per-row gains 0.003, -0.001, 0.003, -0.001: mean 0.001, standard
    deviation 0.0023094 (ddof 1), standard error 0.0011547 > 0.001: sigmoid."""
    sigmoid = np.array([0.5, 0.4, 0.5, 0.4])
    wins, se = isotonic_wins(sigmoid, sigmoid - [0.003, -0.001, 0.003, -0.001])
    assert not wins and se == pytest.approx(0.0011547, abs=1e-7)
    wins, se = isotonic_wins(sigmoid, sigmoid - [0.003, 0.002, 0.003, 0.002])  # se 0.000289
    assert wins and se == pytest.approx(0.00028868, abs=1e-8)
