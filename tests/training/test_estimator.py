"""The three model kinds, in training and served: the pyfunc's linear log-odds are the sklearn
pipeline's, contributions add up to the raw log-odds, a LightGBM-only model logged before the
combination artifact still loads, and the report's plots name features in the model's order."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.training.test_models import synthetic
from tests.training.test_pyfunc_model import scoring_frame
from training import pyfunc_model as pm
from training.baselines import logistic_baseline
from training.estimator import Estimator, export_linear
from training.model_logging import _write_artifacts
from training.models import FeatureSchema, fit_lightgbm, to_model_frame

CALIBRATOR = {"method": "sigmoid", "a": 1.7, "b": -0.4}


@pytest.fixture(scope="module")
def parts():
    df, y = synthetic(700, seed=5)
    df.loc[::11, "a"] = np.nan  # a gap in `a` too: two missing indicators
    schema = FeatureSchema.infer(df, ["a", "noise", "b", "seg"])
    frame = to_model_frame(df, schema)
    booster = fit_lightgbm(frame[:450], y[:450], frame[450:], y[450:], schema, seed=3)
    linear = logistic_baseline(schema, seed=3).fit(frame, y)
    return df, schema, booster, linear, export_linear(linear, schema, frame)


def estimator(parts, kind: str) -> Estimator:
    _, schema, booster, linear, export = parts
    if kind == "lightgbm":
        return Estimator(kind, schema, booster, None, None, 1.0)
    if kind == "logistic":
        return Estimator(kind, schema, None, linear, export, 0.0)
    return Estimator(kind, schema, booster, linear, export, 0.3)


def served(parts, kind: str, tmp_path) -> pm.PropensityModel:
    schema = parts[1]
    tmp_path.mkdir(parents=True, exist_ok=True)
    artifacts = _write_artifacts(tmp_path, estimator(parts, kind), schema, CALIBRATOR,
                                 {"task": "churn"})
    model = pm.PropensityModel()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    return model


def frames(parts) -> pd.DataFrame:
    """Training rows and the scoring frame's awkward ones: a gap where training had none
    (`a` has gaps here, so use `noise`), an unknown and a missing level."""
    df = parts[0]
    odd = scoring_frame().drop(columns="account_id").assign(noise=[0.1, np.nan, 0.3, 0.4])
    return pd.concat([df.head(50), odd], ignore_index=True)


def test_the_exported_linear_part_has_the_pipelines_numbers(parts):
    _, schema, _, linear, export = parts
    assert set(export["numeric"]) == {"a", "noise", "b"}
    assert export["numeric"]["noise"]["missing"] is None  # no gap in training: no indicator
    assert export["numeric"]["b"]["missing"] is not None
    assert export["numeric"]["b"]["median"] == 2.0
    coef = linear.named_steps["model"].coef_[0]
    assert [export["categorical"]["seg"]["levels"][lv] for lv in ("x", "y", "z")] == \
        pytest.approx(coef[-3:].tolist(), abs=0)


@pytest.mark.parametrize("kind", ["logistic", "blend"])
def test_served_linear_log_odds_equal_the_pipelines_decision_function(parts, kind, tmp_path):
    _, schema, booster, linear, _ = parts
    model = served(parts, kind, tmp_path)
    frame = frames(parts)
    x = model.matrix(frame)
    typed = to_model_frame(frame, schema)  # the unknown level "new" is missing here too
    expected = linear.decision_function(typed)
    np.testing.assert_allclose(model.linear.log_odds(x), expected, rtol=0, atol=1e-9)
    tree = booster.predict(x, raw_score=True) if kind == "blend" else 0.0
    w = 0.3 if kind == "blend" else 0.0
    np.testing.assert_allclose(model.log_odds_matrix(x), w * tree + (1 - w) * expected,
                               rtol=0, atol=1e-9)
    # training's estimator scores the same
    np.testing.assert_allclose(estimator(parts, kind).log_odds(typed), model.log_odds_matrix(x),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["lightgbm", "logistic", "blend"])
def test_contributions_add_up_to_the_raw_log_odds_for_every_kind(parts, kind, tmp_path):
    model = served(parts, kind, tmp_path)
    frame = frames(parts)
    x = model.matrix(frame)
    contrib = model.contributions_matrix(x, threads=2)
    assert contrib.shape == (len(frame), 5)
    np.testing.assert_allclose(contrib.sum(axis=1), model.log_odds_matrix(x), rtol=0, atol=1e-9)
    raw = 1 / (1 + np.exp(-contrib.sum(axis=1)))
    p = model.probability_matrix(x, threads=1)
    np.testing.assert_allclose(p, pm.calibrate(raw, CALIBRATOR), rtol=0, atol=1e-12)
    scored = model.predict(None, frame, params={"reasons": 2})
    np.testing.assert_allclose(scored["probability"], p, rtol=0, atol=1e-12)
    assert scored["reasons"].tolist() == pm.top_reasons(contrib, model.features, 2)
    # training's contributions are the served ones
    typed = to_model_frame(frame, parts[1])
    np.testing.assert_allclose(estimator(parts, kind).contributions(typed), contrib,
                               rtol=0, atol=1e-9)


def test_a_linear_contribution_is_its_centred_coefficient_term(parts, tmp_path):
    """Hand check of one row: b's term is its standardised value's plus its indicator's."""
    export = parts[4]
    model = served(parts, "logistic", tmp_path)
    row = pd.DataFrame({"a": [0.5], "noise": [0.0], "b": pd.array([None], dtype="Int64"),
                        "seg": pd.Series(["y"], dtype="string")})
    contrib = model.contributions_matrix(model.matrix(row))[0]
    b, seg = export["numeric"]["b"], export["categorical"]["seg"]
    expected_b = (b["coef"] * (b["median"] - b["mean"]) / b["scale"]
                  + b["missing"]["coef"] * (1 - b["missing"]["mean"]) / b["missing"]["scale"])
    assert contrib[2] == pytest.approx(expected_b, abs=1e-12)
    assert contrib[3] == pytest.approx(seg["levels"]["y"] - seg["centre"], abs=1e-12)
    assert contrib[-1] == pytest.approx(export["intercept"] + seg["centre"], abs=1e-12)


def test_a_lightgbm_model_logged_before_the_combination_artifact_still_loads(parts, tmp_path):
    current = served(parts, "lightgbm", tmp_path / "now")
    schema = parts[1]
    artifacts = _write_artifacts(tmp_path, parts[2], schema, CALIBRATOR, {"task": "churn"})
    del artifacts["combination"]
    old = pm.PropensityModel()
    old.load_context(SimpleNamespace(artifacts=artifacts))
    assert old.kind == "lightgbm" and old.linear is None
    x = old.matrix(frames(parts))
    np.testing.assert_array_equal(old.probability_matrix(x), current.probability_matrix(x))
    np.testing.assert_array_equal(old.contributions_matrix(x), current.contributions_matrix(x))


def test_a_logistic_model_has_no_booster_and_says_which_parts_it_needs(parts, tmp_path):
    model = served(parts, "logistic", tmp_path)
    assert model.booster is None and model.features == parts[1].columns
    (tmp_path / "x").mkdir()
    artifacts = _write_artifacts(tmp_path / "x", estimator(parts, "logistic"), parts[1],
                                 CALIBRATOR, {})
    (tmp_path / "x" / "combination.json").write_text(json.dumps({"kind": "blend",
                                                                "tree_weight": 0.5}))
    with pytest.raises(ValueError, match="blend model has a booster"):
        pm.PropensityModel().load_context(SimpleNamespace(artifacts=artifacts))


def test_the_reports_feature_plots_use_the_models_own_feature_order(parts, monkeypatch):
    """The catalogue lists `seg` first; the model's columns put numerics first. The SHAP
    summary must be labelled with the model's order, the order of its contributions."""
    from training import plots
    from training import train as tr

    df, schema, *_ = parts
    model = estimator(parts, "logistic")
    test = df.head(40).assign(label=0)
    catalogue_order = ["seg", "b", "noise", "a"]
    assert catalogue_order != model.features
    seen = {}
    monkeypatch.setattr(plots, "shap_summary", lambda names, contrib, values, path, **_:
                        seen.update(shap=(list(names), contrib, values)))
    monkeypatch.setattr(plots, "feature_importance", lambda names, values, path, **_:
                        seen.update(importance=(list(names), values)))
    for name in ("roc_pr_curves", "calibration_curve", "lift_gain_chart"):
        monkeypatch.setattr(plots, name, lambda *a, **k: None)
    monkeypatch.setattr("mlflow.log_artifacts", lambda *a, **k: None)
    fit = SimpleNamespace(features=catalogue_order, schema=schema, model=model,
                          scores={"model": np.zeros(40)}, raw_test=np.zeros(40))
    tr._log_report(fit, test, np.zeros(40))
    names, contrib, values = seen["shap"]
    assert names == ["a", "noise", "b", "seg"] == model.features
    assert list(values.columns) == names
    expected = model.contributions(to_model_frame(test, schema))
    np.testing.assert_array_equal(contrib, expected)
    a = parts[4]["numeric"]["a"]  # the column labelled "a" holds a's term
    np.testing.assert_allclose(
        contrib[:, names.index("a")],
        a["coef"] * (test["a"].fillna(a["median"]) - a["mean"]) / a["scale"]
        + a["missing"]["coef"] * (test["a"].isna() - a["missing"]["mean"])
        / a["missing"]["scale"], rtol=0, atol=1e-12)
    assert seen["importance"][0] == names


def test_a_value_far_outside_the_training_range_counts_as_five_standard_deviations(parts,
                                                                                  tmp_path):
    # `noise` ~ N(0, 1) in training; 1e6 would be ~1e6 deviations out and decide the score alone
    _, schema, _, linear, export = parts
    assert export["clip"] == 5.0
    frame = frames(parts).head(3).assign(noise=[1e6, -1e6, 0.0])
    typed = to_model_frame(frame, schema)
    model = served(parts, "logistic", tmp_path)
    x = model.matrix(frame)
    np.testing.assert_allclose(model.linear.log_odds(x), linear.decision_function(typed),
                               rtol=0, atol=1e-9)
    p = export["numeric"]["noise"]
    clipped = typed.assign(noise=[p["mean"] + 5 * p["scale"], p["mean"] - 5 * p["scale"], 0.0])
    np.testing.assert_allclose(linear.decision_function(typed), linear.decision_function(clipped),
                               rtol=0, atol=1e-9)
    # the per-feature term is the coefficient times the bound, in training and served alike
    terms = model.linear.contributions(x)[:, schema.columns.index("noise")]
    np.testing.assert_allclose(terms[:2], [5 * p["coef"], -5 * p["coef"]], rtol=0, atol=1e-12)


def test_a_linear_part_exported_before_clipping_scores_unclipped(parts, tmp_path):
    _, schema, _, _, export = parts
    old = {k: v for k, v in export.items() if k != "clip"}
    model = pm.LinearPart(old, schema.to_dict())
    typed = to_model_frame(frames(parts).head(1).assign(noise=[1e3]), schema)
    x = served(parts, "logistic", tmp_path).matrix(typed)
    p = export["numeric"]["noise"]
    term = model.contributions(x)[0, schema.columns.index("noise")]
    assert term == pytest.approx(p["coef"] * (1e3 - p["mean"]) / p["scale"], abs=1e-9)
