# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Exploring the book of accounts
#
# Churn and expansion by segment and cohort, retention curves, and how the features behave
# for accounts that churned versus those that stayed. Reads the data directory
# (`PROPENSITY_DATA_DIR`, default `data/`): run `make demo` first. Open it in Jupyter with
# jupytext, or run it as a script (figures then go to `$NOTEBOOK_OUTPUT_DIR`, default
# `notebook-output/`).

# %%
import os
from pathlib import Path

import matplotlib

if not os.environ.get("JPY_SESSION_NAME"):  # run as a script: no display
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from features.kpis import compute_kpis
from features.settings import Settings
from features.store import FeatureStore
from features.terms import in_force
from features.validation import load_tables

settings = Settings()
OUT = Path(os.environ.get("NOTEBOOK_OUTPUT_DIR", "notebook-output"))
OUT.mkdir(parents=True, exist_ok=True)
tables = load_tables(settings.raw_dir)


def show(fig, name: str) -> None:
    """Display in a notebook; save as PNG when run as a script."""
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=110)
    plt.close(fig)


# %% [markdown]
# ## Churn, renewal and net revenue retention by segment

# %%
kpis = compute_kpis(tables, by=["month", "segment"], gross_margin=settings.gross_margin)
month = pd.to_datetime(kpis["month"])
kpis = kpis[month >= month.max() - pd.DateOffset(months=11)]
print("last 12 months, monthly averages")
by_segment = kpis.groupby("segment").agg(
    accounts=("accounts_start", "mean"),
    monthly_logo_churn=("logo_churn_rate", "mean"),
    renewal_rate=("renewal_rate", "mean"),
    net_revenue_retention=("net_revenue_retention", "mean"),
    arr_end=("arr_end", "last"),
)
print(by_segment.round(3).to_string())

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for segment, frame in kpis.groupby("segment"):
    axes[0].plot(frame["month"], frame["logo_churn_rate"].astype(float), label=segment)
    axes[1].plot(frame["month"], frame["net_revenue_retention"].astype(float), label=segment)
axes[0].set_title("Monthly logo churn rate")
axes[1].set_title("Monthly net revenue retention")
axes[0].legend()
show(fig, "kpis_by_segment")

# %% [markdown]
# ## Retention curves by signup cohort
# Share of each cohort (quarter of the first contract) still holding a contract N months later.

# %%
first = tables.sql(
    "SELECT account_id, MIN(start_date) AS first_start FROM subscriptions GROUP BY 1"
)
months = pd.date_range(first["first_start"].min(), tables.extracted_date(), freq="MS")
alive = []
for month in months:
    active = tables.sql(
        f"SELECT DISTINCT s.account_id FROM subscriptions s WHERE "
        f"{in_force(f'DATE {month.date().isoformat()!r}')}"
    )
    alive.append(pd.DataFrame({"account_id": active["account_id"], "month": month}))
alive = pd.concat(alive).merge(first, on="account_id")
alive["cohort"] = pd.to_datetime(alive["first_start"]).dt.to_period("Q").astype(str)
alive["age"] = (
    (alive["month"].dt.year - pd.to_datetime(alive["first_start"]).dt.year) * 12
    + alive["month"].dt.month - pd.to_datetime(alive["first_start"]).dt.month
)
size = alive[alive["age"] == alive.groupby("cohort")["age"].transform("min")].groupby("cohort")[
    "account_id"].nunique()
curves = alive.groupby(["cohort", "age"])["account_id"].nunique().div(size, level="cohort")
# Only the ages every member of a cohort has reached by the extraction time.
latest_start = pd.to_datetime(first.assign(
    cohort=pd.to_datetime(first["first_start"]).dt.to_period("Q").astype(str)
).groupby("cohort")["first_start"].max())
last_month = months[-1]
reached = ((last_month.year - latest_start.dt.year) * 12
           + last_month.month - latest_start.dt.month)
recent = sorted(size[size >= 20].index)[-6:]
fig, ax = plt.subplots(figsize=(7, 4))
for cohort in recent:
    curve = curves.loc[cohort]
    curve[curve.index <= reached[cohort]].plot(ax=ax, label=cohort, marker=".")
ax.set_xlabel("months since first contract")
ax.set_ylabel("share still a customer")
ax.set_title("Retention by signup cohort")
ax.legend()
show(fig, "retention_curves")

# %% [markdown]
# ## Feature distributions: churned within 90 days vs stayed
# Labels here are computed the quick way for exploration (no contract in force 90 days later);
# `training/labels.py` holds the definitions the models use.

# %%
store = FeatureStore(settings.features_dir)
dates = [d for d in store.dates()
         if pd.Timestamp(d) + pd.Timedelta(days=90) <= tables.extracted_date()]
as_of = dates[len(dates) // 2]
snapshot = store.read(as_of)
later = (pd.Timestamp(as_of) + pd.Timedelta(days=90)).date().isoformat()
still = tables.sql(f"SELECT DISTINCT s.account_id FROM subscriptions s "
                   f"WHERE {in_force(f'DATE {later!r}')}")
snapshot["churned_90d"] = ~snapshot["account_id"].isin(still["account_id"])
print(f"as_of {as_of}: {len(snapshot):,} accounts, churn within 90 days "
      f"{snapshot['churned_90d'].mean():.1%}")
signals = ["usage_trend_30d", "seat_utilisation_30d", "nps_last", "escalations_90d",
           "days_since_last_qbr", "discount_pct"]
print(snapshot.groupby("churned_90d")[signals].median().T.round(3).to_string())
fig, axes = plt.subplots(2, 3, figsize=(12, 6))
for ax, name in zip(axes.flat, signals, strict=True):
    for churned, frame in snapshot.groupby("churned_90d"):
        values = frame[name].dropna().clip(upper=frame[name].quantile(0.99))
        ax.hist(values, bins=30, alpha=0.6, density=True,
                label="churned" if churned else "stayed")
    ax.set_title(name)
axes.flat[0].legend()
show(fig, "feature_distributions")
