"""The synthetic export: deterministic, contract-conformant, realistic, and true to its truth."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from features.contract import MANIFEST_FILE, TABLES
from features.terms import in_force
from simulator import params as P
from simulator.columns import arrow_schema
from simulator.generator import SOURCE, TRUTH_FILE, default_start, generate, generate_into

START = date(2023, 1, 1)
MONTHS = 24
EXTRACTED_AT = datetime(2025, 1, 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """~2,000 accounts x 24 months: the sample the realism targets are asserted on."""
    root = tmp_path_factory.mktemp("generated")
    summary = generate(2000, MONTHS, 11, START, root / "raw", root / "truth")
    return root / "raw", root / "truth", summary


@pytest.fixture(scope="module")
def con(sample: tuple[Path, Path, dict]) -> duckdb.DuckDBPyConnection:
    raw, truth, _ = sample
    con = duckdb.connect()
    for name in TABLES:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{raw / name}.parquet')")
    con.execute(f"CREATE VIEW truth AS SELECT * FROM read_parquet('{truth / TRUTH_FILE}')")
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- determinism and writing ----------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(150, 6, seed, START, tmp_path / name / "raw", tmp_path / name / "truth")
        runs[name] = {**digests(tmp_path / name / "raw"), **digests(tmp_path / name / "truth")}
    assert len(runs["a"]) == len(TABLES) + 2  # tables, manifest, truth
    assert runs["a"] == runs["b"]
    changed = {k for k in runs["a"] if runs["a"][k] != runs["c"][k]}
    assert changed >= {f"{t}.parquet" for t in TABLES} | {TRUTH_FILE, MANIFEST_FILE}


def test_manifest_states_the_end_of_the_window(sample: tuple[Path, Path, dict]) -> None:
    raw, _, summary = sample
    manifest = json.loads((raw / MANIFEST_FILE).read_text())
    assert manifest["extracted_at"] == "2025-01-01T00:00:00"
    assert manifest["source"] == SOURCE
    assert manifest["seed"] == 11
    assert summary["rows"]["accounts"] == 2000
    usage = pq.ParquetFile(raw / "usage_events.parquet")
    assert summary["rows"]["usage_events"] == usage.metadata.num_rows


def test_generate_into_uses_the_data_directory_layout(tmp_path: Path) -> None:
    summary = generate_into(tmp_path, n_accounts=40, months=3, seed=1)
    assert (tmp_path / "raw" / "accounts.parquet").exists()
    assert (tmp_path / "truth" / TRUTH_FILE).exists()
    # By default the window ends at the start of the current month.
    this_month = date.today().replace(day=1)
    assert summary["extracted_at"] == f"{this_month:%Y-%m-%d}T00:00:00"


def test_default_start_is_m_months_before_this_month() -> None:
    assert default_start(3, today=date(2026, 11, 22)) == date(2026, 8, 1)
    assert default_start(24, today=date(2026, 1, 31)) == date(2024, 1, 1)
    assert default_start(13, today=date(2026, 1, 1)) == date(2024, 12, 1)


def test_a_single_account_for_a_single_month_still_writes_every_table(tmp_path: Path) -> None:
    summary = generate(1, 1, 3, date(2024, 6, 1), tmp_path / "raw", tmp_path / "truth")
    assert summary["rows"]["accounts"] == 1
    assert summary["rows"]["truth"] == 1  # an existing customer, so a customer in June
    for name, table in TABLES.items():
        schema = pq.read_schema(tmp_path / "raw" / f"{name}.parquet")
        assert schema.names == list(table.column_names)


def test_start_must_be_a_first_of_month(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first day of a month"):
        generate(10, 2, 1, date(2023, 1, 15), tmp_path / "raw", tmp_path / "truth")


def test_a_crash_leaves_previous_files_untouched_and_no_staging_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "accounts.parquet").write_bytes(b"old")

    def boom(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("simulator.generator._tickets", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(30, 3, 1, START, raw, tmp_path / "truth")
    assert (raw / "accounts.parquet").read_bytes() == b"old"
    assert sorted(p.name for p in raw.iterdir()) == ["accounts.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


# --- contract conformance -------------------------------------------------------------------


@pytest.mark.parametrize("table", list(TABLES))
def test_columns_and_types_are_exactly_the_contract(
    sample: tuple[Path, Path, dict], table: str
) -> None:
    schema = pq.read_schema(sample[0] / f"{table}.parquet")
    expected = arrow_schema(TABLES[table])
    assert schema.names == expected.names
    assert [f.type for f in schema] == [f.type for f in expected]


def test_keys_are_unique_and_references_resolve(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES.values():
        if table.key:
            cols = ", ".join(table.key)
            dupes = one(con, f"SELECT count(*) - count(DISTINCT ({cols})) FROM {table.name}")
            assert dupes == 0, table.name
        for fk in table.foreign_keys:
            dangling = one(
                con,
                f"SELECT count(*) FROM {table.name} t WHERE t.{fk.column} IS NOT NULL AND "
                f"t.{fk.column} NOT IN (SELECT {fk.ref_column} FROM {fk.table})",
            )
            assert dangling == 0, f"{table.name}.{fk.column}"
    dangling = one(
        con,
        "SELECT count(*) FROM nps_responses WHERE contact_id IS NOT NULL AND contact_id NOT IN "
        "(SELECT contact_id FROM contacts WHERE contacts.account_id = nps_responses.account_id)",
    )
    assert dangling == 0


def test_nothing_is_stamped_at_or_after_the_extraction(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES.values():
        for col in table.time_columns:
            if (table.name, col) == ("subscriptions", "end_date"):
                continue  # a fixed term's scheduled end is known when signed
            sql = f"SELECT count(*) FROM {table.name} WHERE {col} >= TIMESTAMP '{EXTRACTED_AT}'"
            late = one(con, sql)
            assert late == 0, f"{table.name}.{col}"
    # ... and the fields known later are null when it had not happened yet.
    assert one(con, "SELECT count(*) FROM support_tickets WHERE closed_at IS NULL") > 0
    sql = "SELECT count(*) FROM support_tickets WHERE closed_at IS NULL AND csat IS NOT NULL"
    assert one(con, sql) == 0


def test_value_rules_of_the_contract_hold(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES.values():
        for rule in table.order_rules:
            broken = one(
                con,
                f"SELECT count(*) FROM {table.name} WHERE {rule.later} < {rule.earlier}",
            )
            assert broken == 0, f"{table.name}: {rule.later} before {rule.earlier}"
        for c in table.columns:
            checks = []
            if not c.nullable:
                checks.append(f"{c.name} IS NULL")
            if c.min is not None:
                checks.append(f"{c.name} < {c.min}")
            if c.max is not None:
                checks.append(f"{c.name} > {c.max}")
            if c.documented:
                checks.append(f"{c.name} NOT IN ({', '.join(repr(a) for a in c.documented)})")
            for check in checks:
                assert one(con, f"SELECT count(*) FROM {table.name} WHERE {check}") == 0, (
                    f"{table.name}: {check}"
                )
    assert one(con, "SELECT count(*) FROM usage_events WHERE quantity < 1") == 0


def test_mrr_is_seats_times_list_price_after_discount(con: duckdb.DuckDBPyConnection) -> None:
    rows = fetch(con, "SELECT product, plan, seats, discount_pct, mrr FROM subscriptions")
    worst = max(
        abs(
            seats * P.PRICES[P.PRODUCTS.index(product), P.PLANS.index(plan)] * (1 - disc / 100)
            - mrr
        )
        for product, plan, seats, disc, mrr in rows
    )
    assert worst <= 0.005 + 1e-9  # rounded to cents


def test_term_shapes(con: duckdb.DuckDBPyConnection) -> None:
    # Monthly terms are open-ended; annual ones last 12 or 24 months; renewals start on the end.
    monthly_with_end = "billing_period = 'monthly' AND end_date IS NOT NULL"
    assert one(con, f"SELECT count(*) FROM subscriptions WHERE {monthly_with_end}") == 0
    lengths = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT datediff('month', start_date, end_date) FROM subscriptions "
            "WHERE billing_period = 'annual' AND day(start_date) = day(end_date)"
        ).fetchall()
    }
    assert {12, 24} <= lengths <= set(range(1, 25))
    renewals = one(
        con,
        "SELECT count(*) FROM subscriptions n JOIN subscriptions o ON n.account_id = o.account_id "
        "AND n.product = o.product AND n.start_date = o.end_date",
    )
    assert renewals > 500
    # A seat change on a monthly term: the old row is cancelled on the day the new one starts.
    changes = one(
        con,
        "SELECT count(*) FROM subscriptions n JOIN subscriptions o ON n.account_id = o.account_id "
        "AND n.product = o.product AND o.billing_period = 'monthly' "
        "AND n.start_date = CAST(o.cancelled_at AS DATE) AND n.seats <> o.seats",
    )
    assert changes > 20


def test_annual_churners_often_give_notice_and_renewers_never(
    con: duckdb.DuckDBPyConnection,
) -> None:
    ends = """
        SELECT s.account_id, s.end_date, max(s.cancelled_at) AS notice,
               count(s.cancelled_at) AS noticed, count(*) AS n_rows,
               EXISTS (SELECT 1 FROM subscriptions r WHERE r.account_id = s.account_id
                       AND r.start_date = s.end_date) AS renewed
        FROM subscriptions s
        WHERE s.billing_period = 'annual' AND s.end_date < DATE '2025-01-01'
          AND s.end_date >= DATE '2023-01-01'
        GROUP BY 1, 2
    """
    renewed_with_notice, partly, churned, noticed, min_lead, max_lead = con.execute(
        f"""SELECT count(*) FILTER (renewed AND noticed > 0),
                   count(*) FILTER (noticed > 0 AND noticed < n_rows),
                   count(*) FILTER (NOT renewed), avg((noticed > 0)::INT) FILTER (NOT renewed),
                   min(datediff('day', notice, end_date)), max(datediff('day', notice, end_date))
            FROM ({ends})"""
    ).fetchone()
    assert renewed_with_notice == 0 and partly == 0  # notice covers every row of the term
    assert churned > 50
    assert 0.45 <= noticed <= 0.75
    assert min_lead >= 30 and max_lead <= 90


def test_an_executive_sponsor_goes_with_better_health(con: duckdb.DuckDBPyConnection) -> None:
    with_sponsor, without = con.execute(
        """SELECT avg(health) FILTER (sponsored), avg(health) FILTER (NOT sponsored) FROM (
             SELECT t.health, EXISTS (
                 SELECT 1 FROM contacts c WHERE c.account_id = t.account_id
                 AND c.role = 'executive sponsor' AND c.start_date <= t.month
                 AND (c.end_date IS NULL OR c.end_date > t.month)) AS sponsored
             FROM truth t)"""
    ).fetchone()
    assert with_sponsor > without + 0.1


def test_usage_has_one_time_sorted_row_group_per_month(sample: tuple[Path, Path, dict]) -> None:
    meta = pq.ParquetFile(sample[0] / "usage_events.parquet").metadata
    assert meta.num_row_groups == MONTHS
    time_col = meta.schema.names.index("event_time")
    previous_max = None
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(time_col).statistics
        lo, hi = stats.min, stats.max
        assert (lo.year, lo.month) == (hi.year, hi.month)
        assert previous_max is None or lo > previous_max
        previous_max = hi
    times = pq.read_table(sample[0] / "usage_events.parquet", columns=["event_time"])
    values = times.column(0).to_numpy()
    assert (np.diff(values.astype(np.int64)) >= 0).all()


# --- realism ------------------------------------------------------------------------------


def test_segments_hierarchy_and_owners(con: duckdb.DuckDBPyConnection) -> None:
    for segment, (lo, hi) in P.TARGET_SEGMENT_SHARE.items():
        share = one(con, f"SELECT avg((segment = '{segment}')::INT) FROM accounts")
        assert lo <= share <= hi, segment
    lo, hi = P.TARGET_PARENT_SHARE
    assert lo <= one(con, "SELECT avg((parent_account_id IS NOT NULL)::INT) FROM accounts") <= hi
    pairs = "accounts a JOIN accounts p ON a.parent_account_id = p.account_id"
    assert one(con, f"SELECT count(*) FROM {pairs} WHERE p.parent_account_id IS NOT NULL") == 0
    assert one(con, f"SELECT avg((p.segment = 'enterprise')::INT) FROM {pairs}") == 1.0
    lo, hi = P.TARGET_ACCOUNTS_PER_OWNER
    assert lo <= one(con, "SELECT count(*) / count(DISTINCT owner) FROM accounts") <= hi
    per_owner = "SELECT count(DISTINCT segment) AS n FROM accounts GROUP BY owner"
    assert one(con, f"SELECT max(n) FROM ({per_owner})") == 1


def test_accounts_exist_before_the_window_and_arrive_during_it(
    con: duckdb.DuckDBPyConnection,
) -> None:
    first = "SELECT account_id, min(start_date) AS first_start FROM subscriptions GROUP BY 1"
    before = one(con, f"SELECT avg((first_start < DATE '{START}')::INT) FROM ({first})")
    assert 0.6 <= before <= 0.8
    tenure_years = one(
        con,
        f"SELECT quantile_cont(datediff('day', first_start, DATE '{START}') / 365.25, 0.9) "
        f"FROM ({first}) WHERE first_start < DATE '{START}'",
    )
    assert tenure_years > 3
    by_quarter = dict(
        con.execute(
            f"SELECT quarter(first_start), count(*) FROM ({first}) "
            f"WHERE first_start >= DATE '{START}' GROUP BY 1"
        ).fetchall()
    )
    assert by_quarter[4] > max(by_quarter[1], by_quarter[2], by_quarter[3])  # Q4 push


ARR_AT = f"""
    SELECT a.segment, s.account_id, 12 * sum(s.mrr) AS arr
    FROM subscriptions s JOIN accounts a USING (account_id)
    WHERE {in_force("DATE '2024-01-01'")}
    GROUP BY 1, 2
"""


def test_median_arr_per_segment(con: duckdb.DuckDBPyConnection) -> None:
    medians = dict(fetch(con, f"SELECT segment, median(arr) FROM ({ARR_AT}) GROUP BY 1"))
    for segment, (lo, hi) in P.TARGET_MEDIAN_ARR.items():
        assert lo <= medians[segment] <= hi, (segment, medians[segment])


COHORTS = """
    SELECT a.segment, c.account_id, c.month,
           max(t.churned::INT) AS churned, max(t.expanded::INT) AS expanded
    FROM truth c JOIN accounts a USING (account_id)
    JOIN truth t ON t.account_id = c.account_id AND t.month >= c.month
        AND t.month < c.month + INTERVAL 12 MONTH
    WHERE c.month IN (DATE '2023-01-01', DATE '2024-01-01')
    GROUP BY 1, 2, 3
"""


def test_annual_logo_churn_per_segment(con: duckdb.DuckDBPyConnection) -> None:
    rates = dict(fetch(con, f"SELECT segment, avg(churned) FROM ({COHORTS}) GROUP BY 1"))
    for segment, (lo, hi) in P.TARGET_ANNUAL_CHURN.items():
        assert lo <= rates[segment] <= hi, (segment, rates[segment])


def test_annual_expansion_share(con: duckdb.DuckDBPyConnection) -> None:
    lo, hi = P.TARGET_ANNUAL_EXPANSION
    assert lo <= one(con, f"SELECT avg(expanded) FROM ({COHORTS})") <= hi


def test_usage_volume_and_seasonality(con: duckdb.DuckDBPyConnection) -> None:
    lo, hi = P.TARGET_USAGE_ROWS_PER_ACCOUNT_MONTH
    per_account_month = one(
        con, "SELECT (SELECT count(*) FROM usage_events) / (SELECT count(*) FROM truth)"
    )
    assert lo <= per_account_month <= hi
    per_seg = dict(
        con.execute(
            "SELECT a.segment, count(*) FROM usage_events u JOIN accounts a USING (account_id) "
            "GROUP BY 1"
        ).fetchall()
    )
    assert per_seg["enterprise"] / 0.1 > per_seg["mid-market"] / 0.3 > per_seg["SMB"] / 0.6
    daily = dict(
        con.execute(
            "SELECT CAST(event_time AS DATE), count(*) FROM usage_events GROUP BY 1"
        ).fetchall()
    )
    july = np.mean([v for d, v in daily.items() if d.month == 7 and d.weekday() < 5])
    august = np.mean([v for d, v in daily.items() if d.month == 8 and d.weekday() < 5])
    december = {d: v for d, v in daily.items() if d.month == 12 and d.weekday() < 5}
    late_dec = np.mean([v for d, v in december.items() if d.day >= 20])
    early_dec = np.mean([v for d, v in december.items() if d.day < 20])
    assert august < 0.85 * july
    assert late_dec < 0.5 * early_dec
    weekend = np.mean([v for d, v in daily.items() if d.weekday() >= 5])
    assert weekend < 0.25 * july


# --- truth ------------------------------------------------------------------------------


def test_truth_covers_customer_months_and_churn_ends_service(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert one(con, "SELECT count(*) - count(DISTINCT (account_id, month)) FROM truth") == 0
    assert one(con, "SELECT count(*) FROM truth WHERE day(month) <> 1") == 0
    # Churned: no term in force on the first day of the next month, and no later months.
    still_served = one(
        con,
        f"""SELECT count(*) FROM truth t JOIN subscriptions s USING (account_id)
            WHERE t.churned AND {in_force("CAST(t.month + INTERVAL 1 MONTH AS DATE)")}""",
    )
    assert still_served == 0
    after = one(
        con,
        "SELECT count(*) FROM truth t JOIN truth c ON t.account_id = c.account_id AND c.churned "
        "AND t.month > c.month",
    )
    assert after == 0
    # Not churned (and not the last month): still a customer when the next month begins.
    lost = one(
        con,
        f"""SELECT count(*) FROM truth t WHERE NOT t.churned AND t.month < DATE '2024-12-01'
            AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = t.account_id
                            AND {in_force("CAST(t.month + INTERVAL 1 MONTH AS DATE)")})""",
    )
    assert lost == 0
    assert one(con, "SELECT count(*) FROM truth WHERE churned AND churn_prob = 0") == 0
    assert one(con, "SELECT count(*) FROM truth WHERE expanded AND expansion_prob = 0") == 0


def test_annual_terms_can_only_churn_at_their_end(con: duckdb.DuckDBPyConnection) -> None:
    mid_term = one(
        con,
        """SELECT count(*) FROM truth t WHERE t.churn_prob > 0 AND EXISTS (
             SELECT 1 FROM subscriptions s WHERE s.account_id = t.account_id
             AND s.billing_period = 'annual' AND s.start_date < t.month
             AND s.end_date >= CAST(t.month + INTERVAL 1 MONTH AS DATE))""",
    )
    assert mid_term == 0


def test_expansions_raise_arr_within_the_month(con: duckdb.DuckDBPyConnection) -> None:
    def arr(at: str) -> str:
        return (
            "(SELECT coalesce(sum(mrr), 0) FROM subscriptions s "
            f"WHERE s.account_id = t.account_id AND {in_force(at)})"
        )

    rows = con.execute(
        f"""SELECT {arr("t.month")} AS before,
                   {arr("CAST(t.month + INTERVAL 1 MONTH AS DATE)")} AS after
            FROM truth t WHERE t.expanded"""
    ).fetchall()
    assert len(rows) > 200
    assert all(after > before for before, after in rows)


def test_realised_rates_match_the_truth_probabilities(con: duckdb.DuckDBPyConnection) -> None:
    churned, churn_p, expanded, expand_p = con.execute(
        "SELECT sum(churned::INT), sum(churn_prob), sum(expanded::INT), sum(expansion_prob) "
        "FROM truth"
    ).fetchone()
    assert abs(churned - churn_p) < 4 * np.sqrt(churn_p)
    assert abs(expanded - expand_p) < 4 * np.sqrt(expand_p)


def test_renewal_truth_matches_the_terms_and_the_churn_at_renewals(
    con: duckdb.DuckDBPyConnection,
) -> None:
    misplaced = one(
        con,
        """SELECT count(*) FROM truth t WHERE t.renewal_day IS NOT NULL AND (
             date_trunc('month', t.renewal_day) <> t.month OR t.decided_month > t.month
             OR NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = t.account_id
                            AND s.billing_period = 'annual' AND s.end_date = t.renewal_day))""",
    )
    assert misplaced == 0
    assert one(con, "SELECT count(*) FROM truth WHERE churn_prob = 1 AND NOT churned") == 0
    churned, expected = con.execute(
        "SELECT sum(churned::INT), sum(renewal_churn_prob) FROM truth "
        "WHERE renewal_day IS NOT NULL"
    ).fetchone()
    assert churned > 50
    assert abs(churned - expected) < 4 * np.sqrt(expected)


def test_churn_rises_as_health_falls(con: duckdb.DuckDBPyConnection) -> None:
    rates = [
        r[1]
        for r in con.execute(
            "SELECT q, avg(churned::INT) "
            "FROM (SELECT *, ntile(4) OVER (ORDER BY health) AS q FROM truth) "
            "GROUP BY q ORDER BY q"
        ).fetchall()
    ]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] > 3 * rates[-1]


# --- signals follow health ------------------------------------------------------------------

CHURN_NEXT_QUARTER = """
    SELECT t.account_id, t.month, t.health,
           EXISTS (SELECT 1 FROM truth c WHERE c.account_id = t.account_id AND c.churned
                   AND c.month > t.month AND c.month <= t.month + INTERVAL 3 MONTH) AS churns
    FROM truth t
"""


def test_nps_is_lower_before_churn(con: duckdb.DuckDBPyConnection) -> None:
    means = dict(
        con.execute(
            f"""SELECT q.churns, avg(n.score) FROM nps_responses n JOIN ({CHURN_NEXT_QUARTER}) q
                ON q.account_id = n.account_id AND q.month = date_trunc('month', n.responded_at)
                GROUP BY 1"""
        ).fetchall()
    )
    assert means[True] < means[False] - 0.5


def test_usage_tickets_and_contacts_follow_health(con: duckdb.DuckDBPyConnection) -> None:
    by_health = con.execute(
        """WITH m AS (SELECT t.account_id, t.month, ntile(3) OVER (ORDER BY t.health) AS tercile
                      FROM truth t),
           u AS (SELECT account_id, date_trunc('month', event_time) AS month,
                        sum(quantity) AS events, count(DISTINCT event_type) AS breadth
                 FROM usage_events GROUP BY 1, 2),
           k AS (SELECT account_id, date_trunc('month', opened_at) AS month, count(*) AS tickets
                 FROM support_tickets GROUP BY 1, 2)
        SELECT tercile, avg(coalesce(events, 0)) / avg(s.seats), avg(coalesce(breadth, 0)),
               avg(coalesce(tickets, 0))
        FROM m LEFT JOIN u USING (account_id, month) LEFT JOIN k USING (account_id, month)
        JOIN (SELECT account_id, max(seats) AS seats FROM subscriptions
              WHERE product = 'core' GROUP BY 1) s USING (account_id)
        GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    low, _, high = by_health
    assert low[1] < 0.7 * high[1]  # events per seat
    assert low[2] < high[2]  # feature breadth
    assert low[3] > 1.5 * high[3]  # tickets
    csat_low, csat_high = con.execute(
        """SELECT avg(CASE WHEN q.health < 0 THEN csat END),
                  avg(CASE WHEN q.health >= 0 THEN csat END)
           FROM support_tickets k JOIN truth q ON q.account_id = k.account_id
           AND q.month = date_trunc('month', k.opened_at)"""
    ).fetchone()
    assert csat_low < csat_high
    detractor_health, overall = con.execute(
        """SELECT avg(CASE WHEN c.role = 'detractor' THEN t.health END), avg(t.health)
           FROM truth t LEFT JOIN contacts c ON c.account_id = t.account_id
           AND date_trunc('month', c.start_date) = t.month AND c.start_date >= DATE '2023-01-01'"""
    ).fetchone()
    assert detractor_health < overall - 0.5


def test_champion_departure_lowers_health(con: duckdb.DuckDBPyConnection) -> None:
    drop, departures = con.execute(
        """SELECT avg(after.health - before.health), count(*)
           FROM contacts c
           JOIN truth before ON before.account_id = c.account_id
                AND before.month = date_trunc('month', c.end_date)
           JOIN truth after ON after.account_id = c.account_id
                AND after.month = before.month + INTERVAL 1 MONTH
           WHERE c.role = 'champion' AND c.end_date >= DATE '2023-01-01'"""
    ).fetchone()
    assert departures > 50
    assert drop < -0.5


def test_qbrs_only_for_mid_market_and_enterprise(con: duckdb.DuckDBPyConnection) -> None:
    by_segment = dict(
        con.execute(
            "SELECT a.segment, count(*) FROM activities v JOIN accounts a USING (account_id) "
            "WHERE v.type = 'qbr' GROUP BY 1"
        ).fetchall()
    )
    assert "SMB" not in by_segment
    assert by_segment["enterprise"] > 0 and by_segment["mid-market"] > 0
