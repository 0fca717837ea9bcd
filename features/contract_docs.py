"""The data contract as Markdown, generated from ``features.contract`` so the docs cannot drift.

``docs/data-contract.md`` is this function's output (``propensity data describe``); a test
fails when the committed file differs from what the contract now renders.
"""

from __future__ import annotations

from features import validation
from features.contract import (
    BILLING_PERIOD_MONTHS,
    DUCKDB_TYPES,
    MANIFEST_FILE,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    TABLES,
    Column,
    Table,
)

REGENERATE = "propensity data describe > docs/data-contract.md"


def render_contract_markdown() -> str:
    """Every contract table, the time semantics and the manifest, as one Markdown page."""
    sections = [
        _intro(),
        _files_section(),
        _time_section(),
        _checks_section(),
        _overview(),
        *(_table_section(t) for t in TABLES.values()),
    ]
    return "\n\n".join(sections) + "\n"


def _intro() -> str:
    return (
        "# Raw data contract\n\n"
        "The tables a CRM / billing / product-analytics export must provide for propensity to "
        "build features, labels and KPIs from it.\n\n"
        "<!-- Generated from features/contract.py: do not edit by hand. "
        f"Regenerate with `{REGENERATE}`. -->"
    )


def _files_section() -> str:
    required = ", ".join(f"`{t}`" for t in REQUIRED_TABLES)
    optional = ", ".join(f"`{t}`" for t in OPTIONAL_TABLES)
    return (
        "## Files\n\n"
        "The raw directory (`data/raw/` by default) holds one file per table, named after it: "
        "`<table>.parquet` or `<table>.csv` (Parquet is used when both exist). CSV files are "
        "UTF-8, comma-separated with double quotes (RFC 4180) and have a header row; every row "
        "has as many fields as the header. Their values are read as text and must parse as the "
        "column's type. A file that cannot be read (not Parquet, cut short, a quote left open) "
        "is refused with one line naming it and the line or the problem. "
        "Parquet columns may have any physical type that holds the logical one without loss "
        "(e.g. a whole-number float for `int64`, a midnight timestamp for `date`).\n\n"
        f"- Required tables: {required}.\n"
        f"- Optional tables: {optional}. An absent optional table is read as empty; the "
        "features it feeds are then null.\n"
        "- Columns beyond the contract are allowed and kept as they are.\n\n"
        f"### `{MANIFEST_FILE}`\n\n"
        "An optional JSON file next to the tables, describing the export:\n\n"
        "```json\n"
        '{"extracted_at": "2025-01-01T00:00:00", "source": "crm-export"}\n'
        "```\n\n"
        "`extracted_at` (ISO timestamp, UTC) is when the export was taken: no event stamp may be "
        "at or after it (see the checks below). `source` is free text. Without the file the "
        "extraction-time check is skipped."
    )


def _time_section() -> str:
    return (
        "## Time semantics\n\n"
        "Features are computed *as of* a date: they may only use what was known before it. "
        "Each table says when its rows become known:\n\n"
        "- a row is known from its **known at** column: at `as_of`, rows stamped at or after "
        "`as_of` have not happened yet;\n"
        "- a column listed as **known later** records something that happened after the row "
        "was created (a cancellation, a ticket's closure and the score given at it): it must "
        "not be used before it happened. A timestamp is known from its own value; a value such "
        "as `csat` from the timestamp recorded with it (`closed_at`);\n"
        "- other columns are known with the row, even when they point to the future (a fixed "
        "term's scheduled `end_date` is known when the term is signed).\n\n"
        "All timestamps are UTC and naive (no offset). Dates are calendar days; a contract term "
        "covers `[start_date, end_date)`."
    )


def _checks_section() -> str:
    v = validation
    rules = [
        (v.MISSING_TABLE, "a required table has no file"),
        (v.MISSING_COLUMN, "a contract column is absent from a table's file"),
        (v.WRONG_TYPE, "a value does not convert to the column's type without loss"),
        (f"{v.UNPARSABLE['date']} / {v.UNPARSABLE['timestamp']}",
         "a date or timestamp value does not parse (or a date has a time of day)"),
        (v.NULL_VALUE, "a null in a column that is not nullable"),
        (v.DUPLICATE_KEY, "two rows share a key"),
        (v.ORPHAN, "a reference to an account that does not exist"),
        (v.SELF_REFERENCE, "an account that is its own parent"),
        (f"{v.NEGATIVE} / {v.BELOW_MIN} / {v.ABOVE_MAX}", "a number outside its range"),
        (v.EMPTY_LABEL, "a free-form label (segment, industry, region, owner) is empty text"),
        (v.OUT_OF_ORDER, "a later stamp before an earlier one (see each table's order rules)"),
        (v.AFTER_EXTRACTION,
         f"a known-at or known-later stamp at or after `extracted_at` of `{MANIFEST_FILE}`"),
    ]
    warnings = [
        (v.ABSENT_OPTIONAL, "an optional table has no file (its features are null)"),
        (v.NULL_NOTED, "a null owner (shown as 'unassigned') or region (shown as 'unknown'); "
                       "stored data keep the null"),
        (v.UNDOCUMENTED, "a billing period that is neither a documented one nor a whole number "
                         "of months (its length in months is then unknown); a ticket priority, "
                         "contact role or activity type outside the documented values (counted "
                         "by no per-value feature, e.g. not as an urgent ticket)"),
    ]
    lines = "\n".join(f"| {name} | {what} |" for name, what in rules)
    warning_lines = "\n".join(f"| {name} | {what} |" for name, what in warnings)
    return (
        "## Checks\n\n"
        "Loading validates every rule below and reports all violations at once, each with a "
        "row count and up to three example keys; nothing is loaded until the data pass.\n\n"
        "**Errors** protect correctness: the data are refused (`propensity data validate` "
        "exits 1).\n\n"
        "| rule | violated when |\n|---|---|\n" + lines + "\n\n"
        "**Warnings** flag data that are only unusual: they are printed, the data load and "
        "`propensity data validate` exits 0.\n\n"
        "| rule | reported when |\n|---|---|\n" + warning_lines + "\n\n"
        "Segments, industries, regions and owners are the customer's own vocabulary: any "
        "non-empty label. Billing periods are "
        + ", ".join(f"`{p}` ({m} months)" for p, m in BILLING_PERIOD_MONTHS.items())
        + " (compared without case), or a whole number of months such as `6`; features use "
        "the period's length in months."
    )


def _overview() -> str:
    rows = "\n".join(
        f"| [`{t.name}`](#{t.name}) | {'optional' if t.optional else 'required'}"
        f" | {_codes(t.key) or '-'} | `{t.known_at}` | {_cell(t.description)} |"
        for t in TABLES.values()
    )
    return (
        "## Tables\n\n"
        "| table | presence | key | known at | description |\n|---|---|---|---|---|\n" + rows
    )


def _table_section(table: Table) -> str:
    facts = [
        f"- **Presence:** {'optional' if table.optional else 'required'}",
        f"- **Key:** {_codes(table.key) or 'none'}",
        "- **Foreign keys:** "
        + (", ".join(f"`{fk.column}` -> `{fk.table}.{fk.ref_column}`"
                     for fk in table.foreign_keys) or "none"),
        f"- **Known at:** `{table.known_at}`",
        f"- **Known later:** {_codes(table.later_known) or 'none'}",
    ]
    if table.order_rules:
        facts.append(
            "- **Order rules:** "
            + ", ".join(f"`{r.later}` >= `{r.earlier}`" for r in table.order_rules)
            + " (when both are set)"
        )
    columns = "\n".join(_column_row(c) for c in table.columns)
    return (
        f"### {table.name}\n\n{table.description}\n\n" + "\n".join(facts) + "\n\n"
        "| column | type | nullable | range / values | description |\n|---|---|---|---|---|\n"
        + columns
    )


def _column_row(column: Column) -> str:
    kind = f"{column.type} ({DUCKDB_TYPES[column.type]})"
    nullable = ("yes (optional: may be absent)" if column.optional
                else "yes" if column.nullable else "no")
    cells = (f"`{column.name}`", kind, nullable, _values(column), _cell(column.description))
    return "| " + " | ".join(cells) + " |"


def _values(column: Column) -> str:
    if column.documented is not None:
        months = " or a number of months" if column.months else ""
        return ", ".join(f"`{a}`" for a in column.documented) + months
    if column.label:
        return "any non-empty label"
    if column.min is not None and column.max is not None:
        return f"{column.min:g} to {column.max:g}"
    if column.min is not None:
        return f">= {column.min:g}"
    if column.max is not None:
        return f"<= {column.max:g}"
    return ""


def _codes(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
