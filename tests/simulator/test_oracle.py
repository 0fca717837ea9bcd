"""The oracle: P(event in [T, T + H) | the simulated state at T), from a hand-made truth frame."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from simulator.oracle import (
    TRUTH_FILE,
    OracleReference,
    oracle_probabilities,
    window_probabilities,
)
from simulator.params import UPSELL_REFERENCE_GROWTH


def truth_row(account: str, month: str, *, churn: float = 0.0, renewal_churn: float = 0.0,
              upsell: float = 0.0, renewal_day: str | None = None,
              decided: str | None = None) -> dict:
    return {
        "account_id": account, "month": date.fromisoformat(month),
        "renewal_day": None if renewal_day is None else date.fromisoformat(renewal_day),
        "decided_month": None if decided is None else date.fromisoformat(decided),
        "churn_prob": churn, "renewal_churn_prob": renewal_churn, "upsell_prob": upsell,
    }


TRUTH = pd.DataFrame(
    [
        # A: open-ended, 10 % a month from December to May.
        *(truth_row("A", f"{m}", churn=0.1, upsell=0.2) for m in (
            "2024-12-01", "2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01")),
        # B: fixed term ending 2025-03-15, left with notice decided in December.
        truth_row("B", "2025-01-01"),
        truth_row("B", "2025-03-01", churn=1.0, renewal_churn=0.3, renewal_day="2025-03-15",
                  decided="2024-12-01"),
        # C: fixed term ending 2025-03-15, no notice: silent churn chance 0.2 at the end.
        truth_row("C", "2025-03-01", churn=0.2, renewal_churn=0.4, upsell=0.5,
                  renewal_day="2025-03-15", decided="2024-12-01"),
        # D: fixed term ending 2025-05-20, early decision drawn in February.
        truth_row("D", "2025-05-01", churn=1.0, renewal_churn=0.25, upsell=0.0,
                  renewal_day="2025-05-20", decided="2025-02-01"),
    ]
)


def rows(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"account_id": [a for a, _ in pairs], "as_of": [date.fromisoformat(t) for _, t in pairs]}
    )


def test_open_ended_churn_compounds_whole_months_and_prorates_the_last() -> None:
    # 2025-01-01 + 90 days = 2025-04-01: January, February, March.
    # 2025-02-01 + 90 days = 2025-05-02: February, March, April, and 1 of May's 31 days.
    p = window_probabilities(TRUTH, "churn", rows(("A", "2025-01-01"), ("A", "2025-02-01")), 90)
    assert p[0] == pytest.approx(1 - 0.9**3)
    assert p[1] == pytest.approx(1 - 0.9**3 * (1 - 0.1 / 31))


def test_a_renewal_decided_before_t_is_known_and_one_decided_later_is_not() -> None:
    p = window_probabilities(
        TRUTH, "churn",
        rows(("B", "2025-01-01"), ("C", "2025-01-01"), ("D", "2025-03-01"),
             ("D", "2025-02-01"), ("D", "2025-01-01")),
        90,
    )
    # B gave notice in December: certain. C gave none: only the silent chance at the end.
    # D at 2025-03-01 (window to 2025-05-30): decided in February, before T, so known.
    # D at 2025-02-01 (window to 2025-05-02): the end day 2025-05-20 is outside the window.
    # D at 2025-01-01: outside too.
    assert p.tolist() == pytest.approx([1.0, 0.2, 1.0, 0.0, 0.0])
    # With a longer horizon from 2025-02-01 the decision (drawn in February, not before T)
    # is not yet known: the chance before it counts.
    later = window_probabilities(TRUTH, "churn", rows(("D", "2025-02-01")), 120)
    assert later.tolist() == pytest.approx([0.25])


def test_renewal_day_on_the_horizon_is_outside_and_on_t_inside() -> None:
    # C ends 2025-03-15: a window [2024-12-15, 2025-03-15) misses it, [2025-03-15, ...) has it.
    p = window_probabilities(TRUTH, "churn", rows(("C", "2024-12-15"), ("C", "2025-03-15")), 90)
    assert p.tolist() == pytest.approx([0.0, 0.2])


def test_upsell_uses_the_qualifying_probability_and_its_timing() -> None:
    p = window_probabilities(
        TRUTH, "upsell", rows(("A", "2025-01-01"), ("C", "2025-01-01"), ("C", "2025-04-01")), 90
    )
    assert p.tolist() == pytest.approx([1 - 0.8**3, 0.5, 0.0])


def test_months_before_t_and_unknown_accounts_count_for_nothing() -> None:
    # A from 2025-02-15 (window to 2025-05-16): 14 of February's 28 days, March, April, and
    # 15 of May's 31 days; December and January are before T.
    p = window_probabilities(TRUTH, "churn", rows(("A", "2025-02-15"), ("Z", "2025-01-01")), 90)
    assert p[0] == pytest.approx(1 - (1 - 0.1 * 14 / 28) * 0.9 * 0.9 * (1 - 0.1 * 15 / 31))
    assert p[1] == 0.0


def test_months_after_the_last_truth_month_keep_its_hazard() -> None:
    # A's truth ends in May (the account left): from 2025-03-16 the window runs to
    # 2025-06-14, so 16 of March's 31 days, April, May, then 13 June days at May's 10 %.
    p = window_probabilities(TRUTH, "churn", rows(("A", "2025-03-16")), 90)
    assert p[0] == pytest.approx(1 - (1 - 0.1 * 16 / 31) * 0.9 * 0.9 * 0.9 ** (13 / 31))
    # A fixed term's end month is not carried on: its churn happens on the end day.
    assert window_probabilities(TRUTH, "churn", rows(("C", "2025-03-01")), 90).tolist() == (
        pytest.approx([0.2])
    )


def test_reads_the_truth_file_and_returns_none_without_it(tmp_path) -> None:
    keys = rows(("A", "2025-01-01"), ("B", "2025-01-01"))
    assert oracle_probabilities(tmp_path, "churn", keys, 90) is None
    TRUTH.to_parquet(tmp_path / TRUTH_FILE)
    assert oracle_probabilities(tmp_path, "cross-sell", keys, 90) is None
    p = oracle_probabilities(tmp_path, "churn", keys, 90)
    assert isinstance(p, np.ndarray)
    assert p.tolist() == pytest.approx([1 - 0.9**3, 1.0])


def test_the_reference_provider_knows_only_the_generators_upsell_definition(tmp_path) -> None:
    """Training hands the provider its label definition; the truth's upsell probability is
    for the reference growth only, so any other growth gets no reference."""
    keys = rows(("A", "2025-01-01"), ("B", "2025-01-01"))
    TRUTH.to_parquet(tmp_path / TRUTH_FILE)
    reference = OracleReference(tmp_path)
    churn = reference("churn", keys, horizon_days=90, upsell_min_growth=0.25)
    assert churn.tolist() == pytest.approx([1 - 0.9**3, 1.0])
    upsell = reference("upsell", keys, horizon_days=90, upsell_min_growth=UPSELL_REFERENCE_GROWTH)
    assert upsell.tolist() == oracle_probabilities(tmp_path, "upsell", keys, 90).tolist()
    assert reference("upsell", keys, horizon_days=90, upsell_min_growth=0.25) is None
    assert OracleReference(tmp_path / "none")("churn", keys, horizon_days=90,
                                               upsell_min_growth=0.1) is None
