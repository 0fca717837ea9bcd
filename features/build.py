"""Point-in-time feature snapshots: one row per account with a contract in force at as_of.

The whole snapshot is one SQL query (a CTE per feature group, joined on account_id) that the
engine runs over the raw tables; only the per-account result reaches Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `propensity features describe` needs neither (~1 s)
    import pandas as pd
    import pyarrow as pa

from features.catalogue import (
    ACCOUNT_ID,
    AS_OF,
    Cutoff,
    Feature,
    FeatureGroup,
    FeatureSpec,
)
from features.families import (
    account,
    customer_score,
    derived,
    hierarchy,
    relationships,
    revenue,
    support,
    usage,
    voice,
)
from features.sources import RawTables
from features.terms import in_force

log = logging.getLogger(__name__)

FLOAT_DECIMALS = 6  # floats are rounded so that rebuilds are identical whatever the threading


class SnapshotError(ValueError):
    """A snapshot was asked for that the data cannot honestly give."""


def feature_groups(spec: FeatureSpec | None = None) -> list[FeatureGroup]:
    """The catalogue, in column order."""
    spec = spec or FeatureSpec()
    optional = [customer_score.group(spec)] if spec.customer_score else []
    return [
        account.group(spec),
        revenue.group(spec),
        usage.group(spec),
        support.group(spec),
        voice.group(spec),
        relationships.contacts_group(spec),
        relationships.activities_group(spec),
        hierarchy.group(spec),
        derived.group(spec),
        *optional,
    ]


def _available(feature: Feature | FeatureGroup, present: frozenset[str]) -> bool:
    return all(src in present for src in feature.source.split("+"))


def _select(feature: Feature, group: FeatureGroup, present: frozenset[str]) -> str:
    if not _available(feature, present):
        value = "NULL"
    elif feature.fill is not None:
        value = f'COALESCE(g_{group.name}."{feature.name}", {feature.fill})'
    else:
        value = f'g_{group.name}."{feature.name}"'
    return f'{_typed(value, feature)} AS "{feature.name}"'


def _typed(value: str, feature: Feature) -> str:
    cast = f"CAST({value} AS {feature.sql_type})"
    return f"ROUND({cast}, {FLOAT_DECIMALS})" if feature.dtype == "float64" else cast


def snapshot_sql(groups: list[FeatureGroup], as_of: date, present: frozenset[str]) -> str:
    """The query of one snapshot, in DuckDB's dialect (portable constructs only)."""
    s = Cutoff(as_of)
    computed = [g for g in groups if g.cte is not None and _available(g, present)]
    ctes = [f"base AS (SELECT DISTINCT s.account_id FROM subscriptions s WHERE {in_force(s.ts())})"]
    ctes += [f"g_{g.name} AS ({g.cte(s)})" for g in computed]  # type: ignore[misc]
    inner = [f"base.{ACCOUNT_ID}", f"{s.day()} AS {AS_OF}"] + [
        _select(f, g, present) for g in groups if g.cte is not None for f in g.features
    ]
    joins = "\n".join(
        f"LEFT JOIN g_{g.name} ON g_{g.name}.{ACCOUNT_ID} = base.{ACCOUNT_ID}" for g in computed
    )
    outer = ["inner_snapshot.*"] + [
        f'{_typed(f.expr if _available(f, present) else "NULL", f)} AS "{f.name}"'  # type: ignore[arg-type]
        for g in groups if g.cte is None for f in g.features
    ]
    return (
        "WITH " + ",\n".join(ctes)
        + f"\nSELECT {', '.join(outer)} FROM (\nSELECT {', '.join(inner)}\nFROM base\n{joins}\n)"
        + f" inner_snapshot ORDER BY {ACCOUNT_ID}"
    )


def check_groups(
    tables: RawTables, groups: list[FeatureGroup], as_of: date, con=None
) -> None:
    """Refuse a group whose query returns other columns than it declares (planning only)."""
    con = con or tables.con
    s = Cutoff(as_of)
    for g in groups:
        if g.cte is None or not _available(g, tables.present):
            continue
        got = [row[0] for row in con.execute(f"DESCRIBE {g.cte(s)}").fetchall()]
        want = [ACCOUNT_ID, *g.names]
        if sorted(got) != sorted(want):
            raise SnapshotError(
                f"feature group {g.name!r} returns {sorted(set(got) - set(want))} not declared "
                f"and lacks {sorted(set(want) - set(got))}"
            )


def check_as_of(extracted_at: datetime | None, as_of: date) -> None:
    """A snapshot past the export's extraction time would silently miss data.

    The one rule for both engines: DuckDB (``RawTables``) and Spark (``SparkRaw``) pass the
    ``extracted_at`` of the manifest they read (None: no manifest, nothing to check).
    """
    import pandas as pd

    if extracted_at is not None and pd.Timestamp(as_of) > pd.Timestamp(extracted_at):
        raise SnapshotError(
            f"as_of {as_of} is after the data's extraction time {extracted_at:%Y-%m-%d %H:%M}: "
            "features there would miss events that had not been exported"
        )


def build_snapshot(
    tables: RawTables,
    as_of: date,
    spec: FeatureSpec | None = None,
    cursor=None,
    checked: bool = False,
    groups: list[FeatureGroup] | None = None,
) -> pa.Table:
    """Features of every account with a contract in force at ``as_of`` (Arrow table).

    ``cursor`` (a cursor of ``tables.con``) lets several snapshots run at once; ``checked``
    skips the declared-columns check when the caller already made it for this catalogue;
    ``groups`` (the catalogue of ``spec`` with some queries swapped, as a grid does) default
    to ``feature_groups(spec)``.
    """
    con = cursor or tables.con
    check_as_of(tables.extracted_at, as_of)
    groups = groups or feature_groups(spec)
    if not checked:
        check_groups(tables, groups, as_of, con)
    return con.sql(snapshot_sql(groups, as_of, tables.present)).to_arrow_table()


def build_features(tables: RawTables, as_of: date, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """The snapshot as a pandas frame (for notebooks, tests and the models)."""
    return build_snapshot(tables, as_of, spec).to_pandas()


def month_starts(start: date, end: date) -> list[date]:
    """First days of the months from ``start`` to ``end`` inclusive (a training grid)."""
    import pandas as pd

    first = pd.Timestamp(start).to_period("M").start_time
    if first.date() < start:
        first = (pd.Timestamp(start).to_period("M") + 1).start_time
    return [d.date() for d in pd.date_range(first, pd.Timestamp(end), freq="MS")]


def default_workers() -> int:
    """One single-threaded snapshot query per core (a third worker measured no better)."""
    return os.cpu_count() or 1


#: The dates' lookback windows cover each day of a grid's span this many times on average where
#: the families other than usage are computed in one query each (see below): 48 weekly dates
#: (each day in 17 windows), not 24 monthly dates (5).
ONE_PASS_MIN_OVERLAP = 8.0
#: The same for the usage family in one pass (features.usage_grid). 24 monthly dates (each day
#: in 5 windows), alternated with main under load ~7 on 2 cores: 30,000 accounts by the command
#: line 30.6 CPU-s against 35.3 per date; 100,000 accounts built in one process 93 against 116
#: CPU-s (2.3 GB peak against 0.85); docs/benchmarks.md. (Before the reductions were kept in
#: tables, monthly grids measured no faster at 30,000 accounts and 1.3x slower at 100,000.)
USAGE_ONE_PASS_MIN_OVERLAP = 4.0


def uses_one_pass(dates: list[date], lookback: int,
                  min_overlap: float = ONE_PASS_MIN_OVERLAP) -> bool:
    """Whether the dates' windows overlap enough (``min_overlap``) for a grid to compute
    their features in one pass."""
    if len(dates) < 2:
        return False
    span = (max(dates) - min(dates)).days + lookback
    return len(dates) * lookback >= min_overlap * span


#: The families other than usage are computed for every date of a grid in one query each
#: (``family_grid``) under the same rule as the usage one pass (``uses_one_pass``): where the
#: dates' windows overlap heavily. There the per-query overhead of many dates is what they save:
#: 48 weekly dates of a 3,000-account book of 17.8 M usage rows, by the command line, 13.3-13.7
#: CPU-s against 14.6-15.8 per date (wall 19.6-20.4 s against 22.1-23.2, alternated, load ~6).
#: Monthly grids stay per date: at 30,000 accounts x 24 monthly dates those queries cost 9.1
#: CPU-s against 7.4 for the 24 per-date queries, and at 100,000 accounts the build's peak memory
#: rose from 0.75 to 2.5 GB; each source row is aggregated once for every date that sees it
#: either way, and only the scans are shared. With the grid forms of revenue and voice
#: (``FeatureGroup.grid``) the families' queries cost 8.0 CPU-s against 9.5 per date there (one
#: thread each), but the whole grid is even (29.6-29.9 CPU-s against 29.8) at twice the peak
#: memory (0.95 against 0.45 GB), so the rule stands.


def build_grid(
    tables: RawTables,
    dates: Iterable[date],
    spec: FeatureSpec | None = None,
    workers: int | None = None,
    one_pass: bool | None = None,
    one_query: bool | None = None,
) -> Iterator[tuple[date, pa.Table]]:
    """Snapshots in date order; ``workers`` of them are computed at once.

    With ``one_query`` the families other than usage are computed for every date first, one
    query each (``features.family_grid``; exact; ``one_query`` None: when ``uses_one_pass``,
    see the measurements above it), and the usage
    family, half a snapshot's cost, in one pass (``features.usage_grid``; ``one_pass`` None:
    when ``uses_one_pass`` with ``USAGE_ONE_PASS_MIN_OVERLAP``, monthly grids too); each
    snapshot then reads its date's rows. A grid of two or more dates is assembled per chunk of
    dates (``features.grid_assembly``: each family once per chunk, placed on the rows by
    position, one projection; the same bytes as each date's own query; 30,000 accounts x 24
    monthly dates 25.3 -> 20.5 CPU-s by the command line). Its queries run ``workers`` at a
    time, single-threaded: one DuckDB query keeps two cores only about two thirds busy
    (measured 1.6x on 2 cores). Each worker has its own cursor on the same in-memory database.
    The chunks are assembled in a thread ahead of the caller (``_ahead``), so the caller must
    not use ``tables.con`` until the iteration ends (DuckDB refuses a second call at once).
    """
    dates = list(dates)
    if not dates:
        return
    for as_of in dates:
        check_as_of(tables.extracted_at, as_of)
    workers = max(1, min(workers or default_workers(), len(dates)))
    groups = feature_groups(spec)
    check_groups(tables, groups, dates[0])  # the catalogue's shape, once
    prepared = families = None
    plan = usage.UsageWindows.of(spec or FeatureSpec())
    if one_query is None:
        one_query = uses_one_pass(dates, plan.lookback)
    if one_query and len(dates) > 1:
        from features import families_np, family_grid

        # the families with a numpy form are computed by it per chunk (grid_assembly)
        families = family_grid.prepare(
            tables.con, [g for g in groups if _available(g, tables.present)
                         and not families_np.has_form(g)], dates)
        groups = [families.group(g) for g in groups]
    if one_pass is None:
        one_pass = uses_one_pass(dates, plan.lookback, USAGE_ONE_PASS_MIN_OVERLAP)
    cache = base = None  # the numpy forms' sources and the dates' accounts, read ahead
    try:
        if one_pass and _available(usage.group(spec or FeatureSpec()), tables.present):
            from features import families_np, grid_assembly, usage_grid

            sources = accounts = None
            if len(dates) > 1:  # read on cursors while the reductions run (each says why)
                sources = families_np.preload(
                    tables.con, [g for g in groups if _available(g, tables.present)])
                accounts = grid_assembly.accounts_ahead(tables.con, dates)
            try:
                prepared = usage_grid.prepare(tables.con, plan, sorted(dates))
            finally:
                cache = sources() if sources else None
                base = accounts() if accounts else None
            groups = [prepared.group(g) if g.name == "usage" else g for g in groups]
        if len(dates) > 1:  # every family once per chunk of dates, placed by position
            from features import grid_assembly

            yield from _ahead(grid_assembly.snapshots(tables, groups, dates, tables.present,
                                                      workers, _available, _typed, cache,
                                                      base),
                              grid_assembly.CHUNK_ROWS)
        else:
            yield dates[0], build_snapshot(tables, dates[0], spec, checked=True, groups=groups)
    finally:
        for grid in (prepared, families):
            if grid is not None:
                grid.drop(tables.con)


def _ahead(items: Iterator[tuple[date, pa.Table]], rows: int
           ) -> Iterator[tuple[date, pa.Table]]:
    """``items`` in order, computed in a thread up to about ``rows`` snapshot rows ahead of
    the caller: the caller's writing of one chunk of dates then overlaps the next chunk's
    alignment and projection, which kept one core idle (docs/benchmarks.md, "the grid's wall
    time"). ``items`` is closed in that thread, and the thread has ended when this returns,
    raises, or is closed early, so that nothing uses the connection after."""
    import threading
    from collections import deque

    ready: deque[tuple[date, pa.Table]] = deque()
    state = {"rows": 0, "done": False, "stop": False, "error": None}
    changed = threading.Condition()

    def produce() -> None:
        try:
            for item in items:
                with changed:
                    while state["rows"] and state["rows"] + item[1].num_rows > rows \
                            and not state["stop"]:
                        changed.wait()
                    if state["stop"]:
                        break
                    ready.append(item)
                    state["rows"] += item[1].num_rows
                    changed.notify_all()
        except BaseException as error:  # given to the caller after the items before it
            state["error"] = error
        finally:
            try:
                items.close()  # an early stop: the assembly's own clean-up, in its thread
            finally:
                with changed:
                    state["done"] = True
                    changed.notify_all()

    thread = threading.Thread(target=produce, name="grid-ahead", daemon=True)
    thread.start()
    try:
        while True:
            with changed:
                while not ready and not state["done"]:
                    changed.wait()
                if not ready:
                    break
                item = ready.popleft()
                state["rows"] -= item[1].num_rows
                changed.notify_all()
            yield item
    finally:
        with changed:
            state["stop"] = True
            changed.notify_all()
        thread.join()
    if state["error"] is not None:
        raise state["error"]
