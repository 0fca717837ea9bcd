"""Recalibration's rules on hand-made inputs: which matured dates fit and test the calibrator,
and the gate a recalibrated version passes (the end-to-end run on a generated book is in
tests/serving/test_recalibration.py)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.recalibrate import RecalibrationError, gate, matured_blocks
from training.train import TrainingError
from training.uncertainty import Interval

MONTHLY = [date(2024, m, 1) for m in range(1, 13)]


def test_the_newest_matured_date_tests_and_the_older_ones_after_the_gap_fit():
    # trained up to 2024-06-01 with a 90-day horizon: 2024-08-30 is the first date allowed
    fit, test = matured_blocks(MONTHLY, date(2024, 6, 1), 90)
    assert fit == [date(2024, 9, 1), date(2024, 10, 1), date(2024, 11, 1)]
    assert test == [date(2024, 12, 1)]
    # the gap counts days: 2024-06-01 + 92 days is 2024-09-01, which then just fits
    assert matured_blocks(MONTHLY, date(2024, 6, 1), 92)[0][0] == date(2024, 9, 1)
    assert matured_blocks(MONTHLY, date(2024, 6, 1), 93)[0][0] == date(2024, 10, 1)


@pytest.mark.parametrize(("trained_to", "found"), [
    (date(2024, 9, 1), "found 2024-12-01"),  # one date: nothing to test on
    (date(2024, 12, 1), "found none"),
])
def test_fewer_than_two_matured_dates_is_a_clear_error(trained_to, found):
    with pytest.raises(RecalibrationError, match="no matured labels to recalibrate on") as err:
        matured_blocks(MONTHLY, trained_to, 90)
    assert found in str(err.value)
    assert f"last training date {trained_to}" in str(err.value)
    assert "the newest matured date is 2024-12-01" in str(err.value)
    assert isinstance(err.value, TrainingError)  # the CLI's and the daily run's handling


@given(st.sets(st.dates(date(2023, 1, 1), date(2025, 12, 31)), max_size=30),
       st.dates(date(2023, 1, 1), date(2025, 12, 31)), st.integers(1, 200))
def test_no_fitted_or_tested_date_is_within_the_horizon_of_the_training(observed, trained_to,
                                                                         horizon):
    eligible = sorted(d for d in observed if d >= trained_to + timedelta(days=horizon))
    try:
        fit, test = matured_blocks(sorted(observed), trained_to, horizon)
    except RecalibrationError:
        assert len(eligible) < 2
        return
    assert fit + test == eligible  # every eligible date is used, none other
    assert test == [max(observed)] and all(d < test[0] for d in fit)


OLD = {"roc_auc": 0.80, "ece": 0.060, "log_loss": 0.200}
SAME_RANKING = Interval(0.0, 0.0, 0.0)  # a sigmoid with a positive slope: AUC unchanged


def decision(after, versus=SAME_RANKING):
    return gate(OLD, after, versus, max_ece_increase=0.01, auc_margin=0.01)


def test_a_recalibration_that_lowers_ece_and_log_loss_is_promoted():
    d = decision({"roc_auc": 0.80, "ece": 0.020, "log_loss": 0.180})
    assert d.alias == "champion"
    assert d.reason.startswith("calibration improves: ECE 0.0600 -> 0.0200, log loss 0.2000 "
                               "-> 0.1800 on the test block; ROC AUC vs the champion +0.0000")


@pytest.mark.parametrize(("after", "why"), [
    ({"roc_auc": 0.80, "ece": 0.060, "log_loss": 0.200},  # the same calibrator
     "recalibration does not improve calibration: ECE 0.0600 -> 0.0600, log loss 0.2000 -> "
     "0.2000 on the test block"),
    ({"roc_auc": 0.80, "ece": 0.050, "log_loss": 0.210},  # ECE better, log loss worse
     "recalibration does not improve calibration: ECE 0.0600 -> 0.0500, log loss 0.2000 -> "
     "0.2100 on the test block"),
    ({"roc_auc": 0.80, "ece": 0.065, "log_loss": 0.190},  # within the gate's ECE rule
     "recalibration does not improve calibration: ECE 0.0600 -> 0.0650"),
    ({"roc_auc": 0.80, "ece": 0.075, "log_loss": 0.190},  # beyond it: the gate's own reason
     "ECE 0.0750 is worse than the champion's 0.0600 by more than 0.01"),
])
def test_a_recalibration_that_does_not_calibrate_better_stays_challenger(after, why):
    d = decision(after)
    assert d.alias == "challenger" and d.reason.startswith(why)


def test_an_isotonic_map_that_costs_ranking_stays_challenger_whatever_its_ece():
    ties = Interval(-0.02, -0.035, -0.008)  # ties among scores the model had ranked apart
    d = decision({"roc_auc": 0.78, "ece": 0.010, "log_loss": 0.150}, ties)
    assert d.alias == "challenger"
    assert d.reason == ("ROC AUC vs the champion -0.0200 [-0.0350, -0.0080] on the same rows: "
                        "may be worse by more than 0.01")


def test_the_command_says_what_is_missing_and_registers_nothing(mlflow_data_dir):
    """No champion yet (an empty registry): exit 1 naming the model; an unknown task: exit 2."""
    from typer.testing import CliRunner

    from propensity_cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "recalibrate", "churn", "--data-dir",
                                 str(mlflow_data_dir)])
    assert result.exit_code == 1
    assert "propensity-churn has no champion to recalibrate" in result.output
    listed = runner.invoke(app, ["models", "list", "--json", "--data-dir",
                                 str(mlflow_data_dir)])
    assert listed.exit_code == 0 and listed.stdout.strip() == "[]"
    result = runner.invoke(app, ["train", "recalibrate", "churn-ish", "--data-dir",
                                 str(mlflow_data_dir)])
    assert result.exit_code == 2 and "unknown task 'churn-ish'" in result.output
