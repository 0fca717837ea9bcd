"""LightGBM's complexity chosen in the folds: the simpler setting unless the other wins beyond
its noise, the choice is what the refit grows, and it is reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training.test_selection import book, run
from training.tuning import SETTINGS, TreeSetting, choose_setting

SIMPLE, DEFAULT = TreeSetting("simple", {"num_leaves": 4}), TreeSetting("default", {})
ORDER = (SIMPLE, DEFAULT)


def test_the_simpler_setting_wins_within_one_standard_error():
    # default better by 0.1 on average, but accounts disagree: differences +0.3, -0.1 -> mean
    # 0.1, residuals +-0.2, clustered se = sqrt(2 / 1 * 0.08) / 2 = 0.2 >= 0.1: keep it simple
    groups = np.array(["a", "b"])
    chosen, report = choose_setting({"simple": np.array([0.6, 0.2]),
                                     "default": np.array([0.3, 0.3])}, groups, ORDER)
    assert chosen == SIMPLE
    assert report["simple"]["difference_to_best"] == pytest.approx(0.1)
    assert report["simple"]["standard_error"] == pytest.approx(0.2)
    assert report["default"] == {"log_loss": pytest.approx(0.3), "difference_to_best": 0.0,
                                 "standard_error": 0.0}


def test_the_bigger_trees_win_when_every_account_says_so():
    groups = np.array(["a", "b", "c", "d"])
    chosen, report = choose_setting({"simple": np.array([0.5, 0.52, 0.5, 0.51]),
                                     "default": np.array([0.3, 0.3, 0.31, 0.3])}, groups, ORDER)
    assert chosen == DEFAULT
    assert report["simple"]["difference_to_best"] > report["simple"]["standard_error"] > 0


def test_a_tie_goes_to_the_simpler_setting_and_nothing_fitted_is_an_error():
    same = np.array([0.2, 0.4])
    assert choose_setting({"simple": same, "default": same}, np.array([1, 2]), ORDER)[0] == SIMPLE
    with pytest.raises(ValueError, match="no tree setting"):
        choose_setting({}, np.array([1]), ORDER)


def test_the_grid_is_ordered_simplest_first():
    leaves = [s.params.get("num_leaves", 15) for s in SETTINGS]  # 15: DEFAULT_PARAMS
    assert leaves == sorted(leaves) and len(set(leaves)) == len(leaves)


def test_the_chosen_setting_is_what_the_refit_grows_and_is_logged():
    df, y = book(150, 12, seed=2, nonlinear=True)
    estimator, selection = run(df, y)
    assert selection.chosen in ("lightgbm", "blend")
    logged = selection.as_json()["lightgbm_setting"]
    assert set(logged["candidates"]) == {s.name for s in SETTINGS}
    best = min(logged["candidates"].values(), key=lambda c: c["log_loss"])
    chosen = logged["candidates"][logged["name"]]
    assert chosen["difference_to_best"] <= chosen["standard_error"]
    assert chosen["log_loss"] >= best["log_loss"]
    # the lightgbm candidate's out-of-fold log loss is the chosen setting's
    assert selection.candidates["lightgbm"]["log_loss"] == pytest.approx(chosen["log_loss"])
    assert selection.fold_rounds == chosen["rounds"]
    leaves = logged["params"].get("num_leaves", 15)
    grown = json.loads(json.dumps(estimator.booster.dump_model()))["tree_info"]
    assert max(t["num_leaves"] for t in grown) <= leaves
    assert estimator.booster.num_trees() == selection.final_rounds


def test_same_data_and_seed_give_the_same_setting_and_scores():
    df, y = book(150, 12, seed=4, nonlinear=True)
    first, second = run(df, y, seed=11), run(df, y, seed=11)
    assert first[1].as_json()["lightgbm_setting"] == second[1].as_json()["lightgbm_setting"]
    assert first[1].as_json() == second[1].as_json()
    frame = first[0].schema
    assert frame == second[0].schema
    assert first[0].booster.model_to_string() == second[0].booster.model_to_string()
