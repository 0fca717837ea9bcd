"""Input drift (serving.monitoring.drift): PSI by hand on tiny frames, and generated books with
a usage collapse injected on purpose (and without it: no false alarm)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from serving.monitoring.drift import (
    FeatureInfo,
    Thresholds,
    categorical_counts,
    input_drift,
    numeric_counts,
    psi,
    quantile_edges,
)

# --- by hand ----------------------------------------------------------------------------------


def test_psi_of_two_count_vectors_by_hand():
    # counts + 0.5: (2.5, 2.5) / 5 = (0.5, 0.5) -> (1.5, 3.5) / 5 = (0.3, 0.7)
    expected = (0.3 - 0.5) * np.log(0.3 / 0.5) + (0.7 - 0.5) * np.log(0.7 / 0.5)
    assert psi(np.array([2, 2]), np.array([1, 3])) == pytest.approx(expected)
    assert psi(np.array([5, 5]), np.array([1, 1])) == 0.0


def test_an_empty_bin_weighs_half_a_count_not_infinity():
    # (1.5, 0.5) / 2 = (0.75, 0.25) -> (0.25, 0.75): 2 x 0.5 ln 3
    assert psi(np.array([1, 0]), np.array([0, 1])) == pytest.approx(np.log(3))


def test_numeric_bins_come_from_the_reference_and_nulls_have_their_own():
    ref = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    edges = quantile_edges(ref, n_bins=2)  # the median of 1..4
    assert edges.tolist() == [2.5]
    assert numeric_counts(ref, edges).tolist() == [2, 2, 1]
    assert numeric_counts(np.array([0.0, 9.0, 9.0, np.nan, np.nan]), edges).tolist() == [1, 2, 2]


def test_categorical_levels_unseen_and_nulls():
    values = pd.Series(["a", "b", "b", "zz", None])
    assert categorical_counts(values, ["a", "b"]).tolist() == [1, 2, 1, 1]


def test_feature_rows_overall_and_per_segment_with_shares_and_range():
    ref = pd.DataFrame({"account_id": list("abcdefgh"), "segment": ["x"] * 4 + ["y"] * 4,
                        "f": [1.0, 2, 3, 4, 1, 2, 3, 4]})
    cur = pd.DataFrame({"account_id": list("abcdefgh"), "segment": ["x"] * 4 + ["y"] * 4,
                        "f": [1.0, 2, 3, 4, 9, 9, np.nan, 4]})
    rows = {r.segment: r for r in input_drift([FeatureInfo("f", "usage", "usage_events", True)],
                                              ref, cur, Thresholds())}
    assert set(rows) == {"all", "x", "y"}
    assert rows["x"].psi == 0.0
    assert rows["y"].null_share == 0.25
    assert rows["y"].outside_range_share == pytest.approx(2 / 3)  # 9, 9 of 9, 9, 4
    assert rows["y"].ks_statistic == 0.75  # at 3: 3 of 4 training values, none of 4, 9, 9
    assert not any(r.alert for r in rows.values())  # 4 accounts: far below the noise level


def test_a_missing_source_table_alerts_whatever_the_numbers():
    frame = pd.DataFrame({"account_id": ["a"], "segment": ["x"], "nps_last": [np.nan]})
    rows = input_drift([FeatureInfo("nps_last", "voice", "nps_responses", True)], frame, frame,
                       Thresholds(), present=frozenset({"accounts"}))
    assert [(r.level, r.alert) for r in rows] == [("source missing", True)] * 2


def test_a_large_shift_on_many_accounts_alerts():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"account_id": np.arange(2000), "f": rng.normal(size=2000)})
    cur = pd.DataFrame({"account_id": np.arange(2000), "f": rng.normal(1.0, size=2000)})
    (row,) = input_drift([FeatureInfo("f", "usage", "usage_events", True)], ref, cur,
                         Thresholds())
    assert row.psi > 0.25 and row.level == "alert" and row.ks_pvalue < 1e-6


# --- generated books ---------------------------------------------------------------------------
GRID = ("2024-09-02", "2025-01-20", "28 days")  # Mondays: weekday effects cancel out
TRAINING = 3  # the first three grid dates are the "training window"
AFFECTED = "mid-market"


def _book(root: Path, seed: int) -> tuple[list[date], object]:
    from typer.testing import CliRunner

    from propensity_cli import app

    runner = CliRunner()
    for args in (["data", "generate", "--accounts", "2000", "--months", "13", "--start",
                  "2024-01-01", "--seed", str(seed)],
                 ["features", "build", "--from", GRID[0], "--to", GRID[1], "--every", GRID[2]]):
        result = runner.invoke(app, [*args, "--data-dir", str(root)])
        assert result.exit_code == 0, result.output
    from features.settings import Settings
    from features.store import FeatureStore

    store = FeatureStore(Settings(data_dir=root).features_dir)
    return store.dates(), store


def _catalogue(root: Path, store) -> list[FeatureInfo]:
    from features.build import feature_groups
    from features.event_types import stored_spec
    from features.settings import Settings

    spec = stored_spec(Settings(data_dir=root), store)
    return [FeatureInfo(f.name, f.family, f.source, f.dtype != "string")
            for g in feature_groups(spec) for f in g.features]


def collapse_usage(root: Path, segment: str, since: date) -> int:
    """Delete the usage events of ``segment``'s accounts from ``since`` on; rows removed."""
    raw = root / "raw"
    accounts = pq.read_table(raw / "accounts.parquet", columns=["account_id", "segment"])
    accounts = accounts.to_pandas()
    hit = accounts.loc[accounts["segment"] == segment, "account_id"]
    events = pq.read_table(raw / "usage_events.parquet")
    times = events.column("event_time").to_pandas()
    drop = events.column("account_id").to_pandas().isin(hit) & (times >= pd.Timestamp(since))
    pq.write_table(events.filter(~drop.to_numpy()), raw / "usage_events.parquet")
    return int(drop.sum())


def _uses_usage(info: FeatureInfo) -> bool:
    return "usage_events" in info.source.split("+")


@pytest.mark.slow
def test_a_usage_collapse_in_one_segment_flags_its_usage_features_only(tmp_path):
    from typer.testing import CliRunner

    from propensity_cli import app

    dates, store = _book(tmp_path, seed=11)
    now = dates[TRAINING]
    removed = collapse_usage(tmp_path, AFFECTED, now - timedelta(days=45))
    assert removed > 0
    result = CliRunner().invoke(app, ["features", "build", "--as-of", str(now),
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    infos = _catalogue(tmp_path, store)
    reference = pd.concat([store.read(d) for d in dates[:TRAINING]], ignore_index=True)
    rows = input_drift(infos, reference, store.read(now), Thresholds())
    frame = pd.DataFrame([r.as_dict() for r in rows])
    usage = {i.name for i in infos if _uses_usage(i)}
    alerts = frame[frame["alert"]]
    # Every alert is a usage-sourced feature, and none is in an unaffected segment.
    assert set(alerts["feature"]) <= usage
    assert set(alerts["segment"]) <= {AFFECTED, "all"}
    # The collapse is seen: the 30-day usage counts of the segment are on alert.
    in_segment = frame[frame["segment"] == AFFECTED].set_index("feature")
    assert in_segment.loc[["events_30d", "active_users_30d", "feature_breadth_30d"],
                          "alert"].all()
    by_family = (in_segment.assign(uses_usage=[f in usage for f in in_segment.index])
                 .groupby("uses_usage")["psi"].median())
    assert by_family[True] > 0.25 > 0.1 > by_family[False]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_stable_population_raises_no_alert(tmp_path, seed):
    """Two disjoint halves of one book's accounts: the training window's snapshots of one half
    against the next snapshot of the other. No feature, overall or in any segment, alerts."""
    dates, store = _book(tmp_path, seed=seed)
    infos = _catalogue(tmp_path, store)
    current = store.read(dates[TRAINING - 1])
    half = set(current["account_id"].sample(frac=0.5, random_state=seed))
    reference = pd.concat([store.read(d) for d in dates[:TRAINING]], ignore_index=True)
    reference = reference[~reference["account_id"].isin(half)]
    current = current[current["account_id"].isin(half)]
    rows = input_drift(infos, reference, current, Thresholds())
    assert [(r.feature, r.segment, r.psi) for r in rows if r.alert] == []
