"""The servable model: calibration and frame rules pinned to training's, reasons on request, and
an MLflow round trip that loads the model where the project cannot be imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.training.test_models import synthetic
from training import pyfunc_model as pm
from training.calibration import Calibrator
from training.model_logging import _write_artifacts, example_frame, log_propensity_model
from training.models import (
    FeatureSchema,
    contributions,
    fit_lightgbm,
    predict_raw,
    to_model_frame,
)

ROOT = Path(__file__).resolve().parents[2]
CALIBRATORS = [
    {"method": "identity"},
    {"method": "isotonic", "x": [0.1, 0.3, 0.7], "y": [0.05, 0.2, 0.9]},
    {"method": "sigmoid", "a": 1.7, "b": -0.4},
]


def test_calibrate_hand_worked_values():
    iso = {"method": "isotonic", "x": [0.2, 0.6], "y": [0.1, 0.5]}
    np.testing.assert_allclose(pm.calibrate([0.0, 0.4, 1.0], iso), [0.1, 0.3, 0.5])
    # a = 2, b = 0 at p = 1/4: logit = -ln 3, so sigmoid(-2 ln 3) = 1 / (1 + 9)
    np.testing.assert_allclose(pm.calibrate([0.25], {"method": "sigmoid", "a": 2, "b": 0}), [0.1])
    np.testing.assert_array_equal(pm.calibrate([0.0, 0.3], {"method": "identity"}), [0.0, 0.3])
    with pytest.raises(ValueError, match="beta"):
        pm.calibrate([0.5], {"method": "beta"})


@pytest.mark.parametrize("d", CALIBRATORS, ids=lambda d: d["method"])
def test_calibrate_matches_training_calibrator(d):
    p = np.array([0.0, 1e-12, 0.05, 0.1, 0.2, 0.5, 0.69, 0.7, 0.95, 1.0])
    np.testing.assert_array_equal(pm.calibrate(p, d), Calibrator.from_dict(d).predict(p))


def scoring_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "a": [0.5, -1.0, np.nan, 2.0],
            "noise": [0.1, 0.2, 0.3, 0.4],
            "b": pd.array([1, None, 3, 4], dtype="Int64"),
            "seg": pd.Series(["x", "new", None, "z"], dtype="string"),
        }
    )


def test_model_frame_matches_training_model_frame():
    schema = FeatureSchema(["a", "noise", "b"], {"seg": ["x", "y", "z"]})
    frame = scoring_frame()
    pd.testing.assert_frame_equal(
        pm.model_frame(frame, schema.to_dict()), to_model_frame(frame, schema)
    )


def test_model_frame_is_lenient_where_training_is_strict():
    schema = {"numeric": ["a", "b"], "categorical": {"seg": ["x", "y"]}}
    frame = pm.model_frame(pd.DataFrame({"a": ["1.5", "n/a"], "extra": [1, 2]}), schema)
    np.testing.assert_array_equal(frame["a"], [1.5, np.nan])
    np.testing.assert_array_equal(frame["b"], [np.nan, np.nan])
    assert frame["seg"].isna().all() and list(frame["seg"].cat.categories) == ["x", "y"]


def test_top_reasons_are_the_strongest_raising_and_lowering():
    contrib = np.array([[0.1, -0.5, 0.3, 9.0], [0.0, 0.2, -0.2, -9.0]])  # last column: bias
    reasons = [json.loads(r) for r in pm.top_reasons(contrib, ["p", "q", "r"], 2)]
    assert reasons == [
        {"raising": [{"feature": "r", "contribution": 0.3}, {"feature": "p", "contribution": 0.1}],
         "lowering": [{"feature": "q", "contribution": -0.5}]},
        {"raising": [{"feature": "q", "contribution": 0.2}],
         "lowering": [{"feature": "r", "contribution": -0.2}]},
    ]


@pytest.mark.parametrize("seed", range(4))
def test_the_wrappers_reasons_are_the_apis(seed):
    """The wrapper repeats the API's reasons rule (it may not import serving): the same
    features, order and contributions, ties and zero contributions included."""
    from serving.reasons import DIRECTIONS, strongest

    contrib = np.random.default_rng(seed).integers(-3, 4, size=(60, 7)) / 4  # ties, zeros
    features = ["a", "b", "c", "d", "e", "f"]
    for k in (1, 3, 8):
        idx, val = strongest(contrib[:, :6], k)
        expected = [
            {direction: [{"feature": features[j], "contribution": v}
                         for j, v in zip(idx[i, d], val[i, d], strict=True) if j >= 0]
             for d, direction in enumerate(DIRECTIONS)}
            for i in range(len(contrib))
        ]
        assert [json.loads(r) for r in pm.top_reasons(contrib, features, k)] == expected
    assert pm.REASON_DIRECTIONS == DIRECTIONS


@pytest.fixture(scope="module")
def fitted():
    df, y = synthetic(700, seed=5)
    schema = FeatureSchema.infer(df, ["a", "noise", "b", "seg"])
    booster = fit_lightgbm(df[:450], y[:450], df[450:], y[450:], schema, seed=3)
    return df, schema, booster


@pytest.fixture()
def in_process(fitted, tmp_path):
    """The pyfunc class loaded from artifacts as MLflow would, without MLflow."""
    df, schema, booster = fitted
    artifacts = _write_artifacts(tmp_path, booster, schema, CALIBRATORS[2], {"task": "churn"})
    model = pm.PropensityModel()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    return model


def test_predict_is_calibrated_booster_output_and_reasons_only_on_request(fitted, in_process):
    _, schema, booster = fitted
    frame = scoring_frame()
    out = in_process.predict(None, frame)
    assert list(out.columns) == ["probability"]
    expected = pm.calibrate(predict_raw(booster, to_model_frame(frame, schema)), CALIBRATORS[2])
    np.testing.assert_allclose(out["probability"], expected, rtol=0, atol=1e-12)
    assert list(in_process.predict(None, frame, params={"reasons": 0}).columns) == ["probability"]

    with_reasons = in_process.predict(None, frame, params={"reasons": 2})
    np.testing.assert_array_equal(with_reasons["probability"], out["probability"])
    contrib = contributions(booster, to_model_frame(frame, schema))[:, :4]
    names = booster.feature_name()
    for row, text in zip(contrib, with_reasons["reasons"], strict=True):
        reasons = json.loads(text)
        up = [j for j in np.argsort(-row, kind="stable")[:2] if row[j] > 0]
        down = [j for j in np.argsort(row, kind="stable")[:2] if row[j] < 0]
        assert len(up) + len(down) > 0
        for direction, top in (("raising", up), ("lowering", down)):
            assert [r["feature"] for r in reasons[direction]] == [names[j] for j in top]
            np.testing.assert_allclose([r["contribution"] for r in reasons[direction]], row[top])


def test_predict_tolerates_absent_optional_columns_and_refuses_unrelated_frames(in_process):
    frame = scoring_frame()
    without_b = in_process.predict(None, frame.drop(columns=["b"]))
    as_missing = in_process.predict(None, frame.assign(b=pd.array([None] * 4, dtype="Int64")))
    np.testing.assert_array_equal(without_b["probability"], as_missing["probability"])
    empty = in_process.predict(None, frame.head(0), params={"reasons": 3})
    assert list(empty.columns) == ["probability"] and len(empty) == 0
    with pytest.raises(ValueError, match="none of the model's feature columns"):
        in_process.predict(None, pd.DataFrame({"account_id": ["a"]}))


def test_example_frame_has_signature_types(fitted):
    df, schema, _ = fitted
    example = example_frame(df.assign(extra=1), schema, rows=3)
    assert list(example.columns) == schema.columns
    assert example["b"].dtype == "float64" and example["seg"].dtype == object
    assert example["seg"].tolist() == [str(v) for v in df["seg"].head(3)]


LOADER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys
    root, uri, data, out = sys.argv[1:5]
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and p.rstrip("/") != root]
    project = ("training", "features", "serving")
    unreachable = all(importlib.util.find_spec(name) is None for name in project)

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in project:
                raise ImportError(f"the project was imported: {name}")

    sys.meta_path.insert(0, Refuse())
    import mlflow
    import pandas as pd
    model = mlflow.pyfunc.load_model(uri)
    frame = pd.read_parquet(data)
    plain = model.predict(frame)
    reasons = model.predict(frame, params={"reasons": 2})
    json.dump({
        "unreachable": unreachable,
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in project),
        "columns": list(plain.columns),
        "probability": plain["probability"].tolist(),
        "reasons": reasons["reasons"].tolist(),
    }, open(out, "w"))
    """
)


@pytest.mark.slow
def test_round_trip_through_the_registry_without_the_project(
    fitted, tmp_path, mlflow_template_db, monkeypatch
):
    import mlflow
    from mlflow import MlflowClient

    df, schema, booster = fitted
    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment(
        "propensity-test", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    meta = {"task": "churn", "catalogue_version": "test", "horizon_days": 90}
    with mlflow.start_run(experiment_id=experiment):
        info = log_propensity_model(
            booster,
            schema,
            CALIBRATORS[1],
            meta,
            df.head(5),
            registered_model_name="propensity-test",
        )
    assert info.model_uri.startswith("models:/m-")
    assert info.registered_model_version == 1
    stored = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    assert (stored / "pyfunc_model.py").read_text() == Path(pm.__file__).read_text()
    assert json.loads((stored / "artifacts" / "schema.json").read_text()) == schema.to_dict()
    assert not (stored / "uv.lock").exists()  # the model carries no copy of the project's lock
    client = MlflowClient()
    client.set_registered_model_alias("propensity-test", "champion", "1")

    frame = scoring_frame()
    loaded = mlflow.pyfunc.load_model("models:/propensity-test@champion")
    in_process = loaded.predict(frame)  # account_id is an extra column, ignored
    assert list(in_process.columns) == ["probability"]
    np.testing.assert_allclose(
        in_process["probability"],
        pm.calibrate(predict_raw(booster, to_model_frame(frame, schema)), CALIBRATORS[1]),
        rtol=0,
        atol=1e-12,
    )
    assert loaded.unwrap_python_model().meta == meta
    signature = loaded.metadata.signature
    assert signature.inputs.input_names() == schema.columns
    assert not any(spec.required for spec in signature.inputs.inputs)
    assert signature.params.to_dict() == [
        {"name": "reasons", "type": "long", "default": 0, "shape": None}
    ]

    frame.to_parquet(tmp_path / "frame.parquet")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(ROOT),
            "models:/propensity-test@champion",
            str(tmp_path / "frame.parquet"),
            str(tmp_path / "out.json"),
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=180,
    )
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["unreachable"] is True and out["loaded"] == []
    assert out["columns"] == ["probability"]
    np.testing.assert_allclose(out["probability"], in_process["probability"], rtol=0, atol=1e-12)
    assert out["reasons"] == loaded.predict(frame, params={"reasons": 2})["reasons"].tolist()
    assert all(set(json.loads(r)) == {"raising", "lowering"} for r in out["reasons"])


# --- the numpy fast path (serving) equals predict() ------------------------------------------
def test_numpy_probabilities_equal_predict(in_process):
    frame = scoring_frame()
    x = in_process.matrix(frame)
    assert x.shape == (4, 4) and x.dtype == "float64"
    # seg levels are x, y, z: "x" is code 0, "new" and None missing, "z" code 2
    np.testing.assert_array_equal(x[:, 3], [0.0, np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(x[:, 2], [1.0, np.nan, 3.0, 4.0])
    for threads in (1, 2):
        np.testing.assert_allclose(
            in_process.probability_matrix(x, threads),
            in_process.predict(None, frame)["probability"].to_numpy(),
            rtol=0,
            atol=1e-12,
        )
    assert in_process.probability_matrix(x[:0]).shape == (0,)


def records_and_frame() -> tuple[list[dict], pd.DataFrame]:
    """JSON-like records and the frame they stand for: None for missing, categoricals as
    text, an unknown level, text in a numeric column, an absent key, numbers as text."""
    records = [
        {"a": 0.5, "noise": 0.1, "b": 1, "seg": "x"},
        {"a": -1.0, "noise": 0.2, "b": None, "seg": "new"},
        {"a": None, "noise": "n/a", "b": 3, "seg": None, "extra": "ignored"},
        {"a": "2.5", "b": 4, "seg": "z"},
        {"a": 7, "noise": -0.3, "b": True, "seg": "y"},
    ]
    frame = pd.DataFrame(
        {
            "a": [0.5, -1.0, np.nan, 2.5, 7.0],
            "noise": [0.1, 0.2, np.nan, np.nan, -0.3],
            "b": pd.array([1, None, 3, 4, 1], dtype="Int64"),
            "seg": pd.Series(["x", "new", None, "z", "y"], dtype="string"),
        }
    )
    return records, frame


def test_matrix_from_records_equals_matrix_of_the_frame(in_process):
    records, frame = records_and_frame()
    from_records = in_process.matrix_from_records(records)
    from_frame = in_process.matrix(frame)
    np.testing.assert_array_equal(from_records, from_frame)  # NaN equals NaN here
    np.testing.assert_array_equal(np.isnan(from_records).sum(axis=0), [1, 2, 1, 2])
    np.testing.assert_array_equal(from_records[:, 3], [0.0, np.nan, np.nan, 2.0, 1.0])
    np.testing.assert_array_equal(
        in_process.probability_matrix(from_records),
        in_process.predict(None, frame)["probability"].to_numpy(),
    )
    assert in_process.matrix_from_records([]).shape == (0, 4)


def test_numpy_contributions_equal_booster_contributions(fitted, in_process):
    _, schema, booster = fitted
    frame = scoring_frame()
    expected = booster.predict(to_model_frame(frame, schema), pred_contrib=True)
    got = in_process.contributions_matrix(in_process.matrix(frame), 2)
    assert got.shape == (4, 5)  # four features and the bias
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    raw = predict_raw(booster, to_model_frame(frame, schema))
    np.testing.assert_allclose(1 / (1 + np.exp(-got.sum(axis=1))), raw, rtol=0, atol=1e-12)
    assert in_process.contributions_matrix(np.empty((0, 4))).shape == (0, 5)
