"""Synthetic B2B SaaS export: the contract tables, plus the truth a model could at best know.

``generate`` simulates ``n_accounts`` accounts over ``months`` months (see ``simulator.simulation``
for the world and ``simulator.params`` for its numbers and realism targets) and writes:

- ``out_dir``: one Parquet file per contract table and ``_manifest.json``, whose
  ``extracted_at`` is the end of the window; nothing in the tables is stamped at or after it
  (``health_scores`` is the customer's own health score, of known quality: see
  ``simulator.customer_score``);
- ``truth_dir/account_month_truth.parquet``: per customer and month, the latent health, the
  probabilities of churn and expansion given the state when the month begins, and what
  happened; for the month a fixed term ends, its end day, the month its early (notice)
  decision was drawn and the churn probability as seen before that decision; and the chance
  of an upsell as the labels define it (ARR up >= ``UPSELL_REFERENCE_GROWTH`` or a new product).

Same seed, same bytes. Files are written into temporary sibling directories and moved into
place one by one, so a crash never leaves a partly written table.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.contract import (
    ACCOUNTS,
    ACTIVITIES,
    ACTIVITY_TYPES,
    CONTACT_ROLES,
    CONTACTS,
    HEALTH_SCORES,
    MANIFEST_FILE,
    NPS_RESPONSES,
    SUBSCRIPTIONS,
    SUPPORT_TICKETS,
    TICKET_PRIORITIES,
    USAGE_EVENTS,
    Table,
)
from simulator import params as P
from simulator.columns import (
    NULL,
    US_PER_DAY,
    arrow_schema,
    date_array,
    float_array,
    ids,
    month_start,
    take_strings,
    timestamp_array,
)
from simulator.customer_score import health_score_columns, health_score_rows
from simulator.population import (
    accounts_table,
    build_population,
    new_contact_rows,
    new_subscription_rows,
    start_state,
)
from simulator.signals import UsageDensity, activities, nps, tickets, usage_table
from simulator.simulation import World, step
from simulator.truth import TRUTH_FILE, TRUTH_SCHEMA, truth_dir

log = logging.getLogger(__name__)

SOURCE = "propensity generator"
# 2: notice-first renewal decisions, label-exact upsell truth, clearer health signals
# 3: the customer's own health score (health_scores), from a random stream of its own
GENERATOR_VERSION = 3
USAGE_STREAM = 0x5553  # the random stream of denser usage (UsageDensity) beside the seed


def default_start(months: int, today: date | None = None) -> date:
    """First day of the month ``months`` months before this month (the window ends this month)."""
    today = today or date.today()
    index = today.year * 12 + (today.month - 1) - months
    return date(index // 12, index % 12 + 1, 1)


def generate_into(
    data_dir: Path, n_accounts: int, months: int, seed: int, start: date | None = None,
    usage: UsageDensity | None = None,
) -> dict:
    """``generate`` into a data directory's layout: ``raw/`` for the export, ``truth/`` beside."""
    data_dir = Path(data_dir)
    return generate(
        n_accounts, months, seed, start or default_start(months),
        data_dir / "raw", truth_dir(data_dir), usage,
    )


def generate(
    n_accounts: int, months: int, seed: int, start: date, out_dir: Path, truth_dir: Path,
    usage: UsageDensity | None = None,
) -> dict:
    """Simulate and write the export and the truth; return row counts and the time it took.

    ``usage`` draws denser usage than the default book (``simulator.signals.UsageDensity``):
    only ``usage_events`` changes, its rows drawn from a random stream of their own, and
    every other table is the default book's, byte for byte.
    """
    if n_accounts < 1 or months < 1:
        raise ValueError("n_accounts and months must be at least 1")
    usage = usage or UsageDensity()
    if start.day != 1:
        raise ValueError(f"start must be the first day of a month, got {start.isoformat()}")
    began = time.perf_counter()
    out_dir, truth_dir = Path(out_dir), Path(truth_dir)
    m0 = (start.year - 1970) * 12 + start.month - 1
    end_day = int(month_start(m0 + months))
    year, month0 = divmod(m0 + months, 12)
    extracted_at = datetime(1970 + year, month0 + 1, 1)  # the end of the window, midnight
    stage = _staging_dir(out_dir)
    truth_stage = _staging_dir(truth_dir)
    try:
        rows = _simulate_and_write(n_accounts, months, seed, m0, end_day, stage, truth_stage,
                                   usage)
        manifest = {
            "extracted_at": extracted_at.isoformat(), "source": SOURCE, "seed": seed,
            "n_accounts": n_accounts, "months": months, "start": start.isoformat(),
            "generator_version": GENERATOR_VERSION,
        }
        if usage != UsageDensity():  # the default book's manifest stays as it was
            manifest["usage_density"] = dataclasses.asdict(usage)
        (stage / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.is_symlink():  # raw/ -> a pulled export (data pull), which never changes:
            out_dir.unlink()  # the new data go into a folder of their own; the export stays
        _move_into_place(stage, out_dir, last=MANIFEST_FILE)
        _move_into_place(truth_stage, truth_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(truth_stage, ignore_errors=True)
    seconds = round(time.perf_counter() - began, 2)
    log.info("generated %d accounts x %d months in %.1f s: %s", n_accounts, months, seconds, rows)
    return {
        "accounts": n_accounts, "months": months, "seed": seed,
        "extracted_at": extracted_at.isoformat(), "rows": rows, "seconds": seconds,
    }


def _staging_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))


def _move_into_place(stage: Path, target: Path, last: str | None = None) -> None:
    """Atomic per file (same file system): a reader sees the old or the new file, never half."""
    target.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in stage.iterdir())
    if last in names:
        names.remove(last)
        names.append(last)
    for name in names:
        os.replace(stage / name, target / name)


def _simulate_and_write(
    n: int, months: int, seed: int, m0: int, end_day: int, stage: Path, truth_stage: Path,
    usage: UsageDensity,
) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    dense_rng = np.random.default_rng([seed, USAGE_STREAM]) if usage != UsageDensity() else None
    pop = build_population(n, rng, m0, months)
    subs, contacts = new_subscription_rows(4 * n), new_contact_rows(6 * n)
    world = World(pop, start_state(pop, rng, m0, subs, contacts), rng, m0, subs, contacts)
    accounts = accounts_table(pop)
    account_ids = accounts["account_id"]
    usage_schema = arrow_schema(USAGE_EVENTS)
    collected: dict[str, list[dict[str, np.ndarray]]] = {"tickets": [], "nps": [], "activities": []}
    usage_rows = 0
    with pq.ParquetWriter(stage / "usage_events.parquet", usage_schema, compression="zstd") as out:
        for k in range(months):
            month = step(world, k)
            table = usage_table(world, month, account_ids, usage_schema)
            if dense_rng is not None:  # the default draw above keeps the world's stream as is
                table = usage_table(world, month, account_ids, usage_schema, usage, dense_rng)
            if table.num_rows:
                out.write_table(table, row_group_size=table.num_rows)  # one row group per month
            usage_rows += table.num_rows
            collected["tickets"].append(tickets(world, month))
            collected["nps"].append(nps(world, month))
            collected["activities"].append(activities(world, month))
            log.debug("month %d: %d customers, %d usage rows", k, len(month.idx), table.num_rows)
    end_us = end_day * US_PER_DAY
    tables = {
        "accounts": (ACCOUNTS, accounts),
        "subscriptions": (SUBSCRIPTIONS, _subscriptions(world, account_ids, end_us)),
        "support_tickets": (
            SUPPORT_TICKETS, _tickets(_concat(collected["tickets"]), account_ids, end_us)
        ),
        "nps_responses": (NPS_RESPONSES, _nps(_concat(collected["nps"]), account_ids)),
        "contacts": (CONTACTS, _contacts(world, account_ids, end_day)),
        "activities": (ACTIVITIES, _activities(_concat(collected["activities"]), account_ids)),
        "health_scores": (HEALTH_SCORES, health_score_columns(
            health_score_rows(_concat(world.truth), n, seed), account_ids)),
    }
    rows = {}
    for name, (contract, columns) in tables.items():
        rows[name] = _write(stage / f"{name}.parquet", contract, columns)
    rows["usage_events"] = usage_rows
    truth = _concat(world.truth)
    rows["truth"] = _write_truth(truth_stage / TRUTH_FILE, truth, account_ids)
    return rows


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _write(path: Path, contract: Table, columns: dict[str, pa.Array]) -> int:
    table = pa.Table.from_arrays(
        [columns[c] for c in contract.column_names], schema=arrow_schema(contract)
    )
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def _strings(account_ids: pa.Array, account: np.ndarray) -> pa.Array:
    return account_ids.take(pa.array(np.asarray(account, dtype=np.int64)))


def _subscriptions(world: World, account_ids: pa.Array, end_us: int) -> dict[str, pa.Array]:
    """Subscription rows with notices applied and anything known only after the export nulled."""
    s = world.subs
    account, end = s["account"], s["end"]
    cancel = s["cancel"].copy()
    empty = np.zeros(0, dtype=np.int64)
    notices = [(empty, empty, empty), *world.notices]
    notice_account, n_end, n_when = (np.concatenate(x) for x in zip(*notices, strict=True))
    if len(notice_account):
        # Key (account, end day); days since 1970 stay below 2**20 until the year 4840.
        key = (account << 20) | np.where(end == NULL, 0, end)
        n_key = (notice_account << 20) | n_end
        order = np.argsort(n_key)
        pos = np.minimum(np.searchsorted(n_key[order], key), len(order) - 1)
        match = (end != NULL) & (n_key[order][pos] == key)
        cancel[match] = n_when[order][pos][match]
    cancel[cancel >= end_us] = NULL
    product, plan, seats = s["product"], s["plan"], s["seats"]
    mrr = np.round(seats * P.PRICES[product, plan] * (1 - s["disc"] / 100), 2)
    return {
        "subscription_id": ids("S", np.arange(s.size), 8),
        "account_id": _strings(account_ids, account),
        "product": take_strings(P.PRODUCTS, product),
        "plan": take_strings(P.PLANS, plan),
        "seats": pa.array(seats, pa.int64()),
        "mrr": pa.array(mrr, pa.float64()),
        "start_date": date_array(s["start"]),
        "end_date": date_array(end),
        "cancelled_at": timestamp_array(cancel),
        "billing_period": take_strings(("monthly", "annual"), s["annual"].astype(np.int64)),
        "auto_renew": pa.array(s["auto_renew"], pa.bool_()),
        "discount_pct": pa.array(s["disc"], pa.float64()),
    }


def _tickets(t: dict[str, np.ndarray], account_ids: pa.Array, end_us: int) -> dict[str, pa.Array]:
    still_open = t["closed"] >= end_us
    return {
        "ticket_id": ids("T", np.arange(len(t["account"])), 8),
        "account_id": _strings(account_ids, t["account"]),
        "opened_at": timestamp_array(t["opened"]),
        "closed_at": timestamp_array(np.where(still_open, NULL, t["closed"])),
        "priority": take_strings(TICKET_PRIORITIES, t["priority"]),
        "escalated": pa.array(t["escalated"], pa.bool_()),
        "csat": float_array(np.where(still_open, np.nan, t["csat"])),
    }


def _nps(r: dict[str, np.ndarray], account_ids: pa.Array) -> dict[str, pa.Array]:
    contact = r["contact"]
    contact_id = ids("C", np.maximum(contact, 0), 8)
    return {
        "account_id": _strings(account_ids, r["account"]),
        "contact_id": pc.if_else(
            pa.array(contact >= 0), contact_id, pa.nulls(len(contact), pa.string())
        ),
        "responded_at": timestamp_array(r["responded"]),
        "score": pa.array(r["score"], pa.int64()),
    }


def _contacts(world: World, account_ids: pa.Array, end_day: int) -> dict[str, pa.Array]:
    c = world.contacts
    keep = np.flatnonzero(c["start"] < end_day)
    end = c["end"][keep]
    return {
        "contact_id": ids("C", keep, 8),
        "account_id": _strings(account_ids, c["account"][keep]),
        "role": take_strings(CONTACT_ROLES, c["role"][keep]),
        "start_date": date_array(c["start"][keep]),
        "end_date": date_array(np.where(end >= end_day, NULL, end)),
    }


def _activities(a: dict[str, np.ndarray], account_ids: pa.Array) -> dict[str, pa.Array]:
    return {
        "account_id": _strings(account_ids, a["account"]),
        "occurred_at": timestamp_array(a["occurred"]),
        "type": take_strings(ACTIVITY_TYPES, a["type"]),
    }


def _write_truth(path: Path, t: dict[str, np.ndarray], account_ids: pa.Array) -> int:
    table = pa.Table.from_arrays(
        [
            _strings(account_ids, t["account"]),
            date_array(t["month"]),
            pa.array(t["health"], pa.float64()),
            pa.array(t["churn_prob"], pa.float64()),
            pa.array(t["expansion_prob"], pa.float64()),
            pa.array(t["churned"], pa.bool_()),
            pa.array(t["expanded"], pa.bool_()),
            date_array(t["renewal_day"]),
            date_array(t["decided_month"]),
            pa.array(t["renewal_churn_prob"], pa.float64()),
            pa.array(t["upsell_prob"], pa.float64()),
        ],
        schema=TRUTH_SCHEMA,
    )
    pq.write_table(table, path, compression="zstd")
    return table.num_rows
