# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Model report: champion vs challenger
#
# Pulls the registered churn, upsell and cross-sell models from MLflow, compares the champion
# with the challenger (and the baselines logged in the same runs), shows the calibration and
# lift charts each run logged, and the top drivers of the champion's scores on the newest
# snapshot (signed contributions from LightGBM, labelled with the catalogue's descriptions).
# Run `make demo` first. Figures go to `$NOTEBOOK_OUTPUT_DIR` (default `notebook-output/`)
# when run as a script.

# %%
import json
import os
import shutil
from pathlib import Path

import matplotlib

if not os.environ.get("JPY_SESSION_NAME"):  # run as a script: no display
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.build import feature_groups
from features.catalogue import all_features
from features.store import FeatureStore
from training.settings import TrainingSettings
from training.tasks import CHALLENGER, CHAMPION, TASKS, registered_name
from training.tracking import configure

settings = TrainingSettings()
OUT = Path(os.environ.get("NOTEBOOK_OUTPUT_DIR", "notebook-output"))
OUT.mkdir(parents=True, exist_ok=True)
print("tracking store:", configure(settings.tracking_uri, settings.mlflow_dir))
client = MlflowClient()
DESCRIPTIONS = {f.name: f.description for f in all_features(feature_groups())}


def version_by_alias(name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


# %% [markdown]
# ## Champion and challenger on their test windows

# %%
METRICS = ["roc_auc", "pr_auc", "brier", "ece", "lift_at_10", "value_capture_at_10"]
rows = []
for task in TASKS:
    name = registered_name(task)
    for alias in (CHAMPION, CHALLENGER):
        version = version_by_alias(name, alias)
        if version is None:
            continue
        run = client.get_run(version.run_id)
        m = run.data.metrics
        row = {"model": name, "alias": alias, "version": int(version.version),
               "test window": run.data.params.get("window_test")}
        row.update({k: m.get(f"test_{k}") for k in METRICS})
        row.update({f"logistic {k}": m.get(f"logistic_test_{k}") for k in ("roc_auc",)})
        row.update({f"health {k}": m.get(f"health_score_test_{k}") for k in ("roc_auc",)})
        row.update({f"oracle {k}": m.get(f"oracle_test_{k}") for k in ("roc_auc",)})
        rows.append(row)
report = pd.DataFrame(rows)
print(report.round(4).to_string(index=False))

# %% [markdown]
# ## Calibration and lift, as logged by each champion's run

# %%
for task in TASKS:
    champion = version_by_alias(registered_name(task), CHAMPION)
    if champion is None:
        continue
    local = Path(mlflow.artifacts.download_artifacts(run_id=champion.run_id,
                                                     artifact_path="report"))
    for chart in ("calibration.png", "lift_gain.png"):
        target = OUT / f"{task}_{chart}"
        shutil.copy(local / chart, target)
        print("chart:", target)

# %% [markdown]
# ## What drives the champion's scores on the newest snapshot

# %%
store = FeatureStore(settings.features_dir)
latest = store.read(store.dates()[-1])
for task in ("churn", "upsell"):
    name = registered_name(task)
    if version_by_alias(name, CHAMPION) is None:
        continue
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    scored = model.predict(latest.drop(columns=["account_id", "as_of"]), params={"reasons": 5})
    reasons = [r for cell in scored["reasons"] for found in json.loads(cell).values()
               for r in found]  # the 5 strongest raising and the 5 strongest lowering
    drivers = (pd.DataFrame(reasons).assign(size=lambda d: d["contribution"].abs())
               .groupby("feature")["size"].mean().sort_values(ascending=False).head(10))
    print(f"\n{name}: mean |contribution| among each account's top 5 reasons each way")
    print(pd.DataFrame({"mean |contribution|": drivers.round(4),
                        "what it means": [DESCRIPTIONS.get(f, f) for f in drivers.index]})
          .to_string())
    fig, ax = plt.subplots(figsize=(7, 4))
    drivers[::-1].plot.barh(ax=ax)
    ax.set_title(f"{name}: top drivers (newest snapshot)")
    ax.set_xlabel("mean |contribution| (log-odds)")
    fig.tight_layout()
    fig.savefig(OUT / f"{task}_drivers.png", dpi=110)
    plt.close(fig)
