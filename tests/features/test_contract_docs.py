"""The committed contract docs are exactly what the contract renders."""

from __future__ import annotations

from pathlib import Path

from features.contract import TABLES
from features.contract_docs import REGENERATE, render_contract_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def test_committed_doc_matches_the_contract():
    committed = DOC.read_text() if DOC.exists() else ""
    # Trailing newlines are the shell's business (echo adds one); everything else must match.
    assert committed.rstrip("\n") == render_contract_markdown().rstrip("\n"), (
        f"{DOC} is out of date with features/contract.py; regenerate it with `{REGENERATE}`"
    )


def test_every_table_and_column_is_documented():
    text = render_contract_markdown()
    for table in TABLES.values():
        assert f"\n### {table.name}\n\n{table.description}\n" in text
        for column in table.columns:
            assert f"| `{column.name}` | {column.type} (" in text


def test_a_table_section_states_key_time_semantics_and_ranges():
    section = render_contract_markdown().split("### support_tickets\n")[1].split("\n### ")[0]
    assert section.splitlines()[3:10] == [
        "- **Presence:** optional",
        "- **Key:** `ticket_id`",
        "- **Foreign keys:** `account_id` -> `accounts.account_id`",
        "- **Known at:** `opened_at`",
        "- **Known later:** `closed_at`, `csat`",
        "- **Order rules:** `closed_at` >= `opened_at` (when both are set)",
        "",
    ]
    assert (
        "| `csat` | float64 (DOUBLE) | yes | 1 to 5 | "
        "Satisfaction score 1-5 given at closure; null = none given. |"
    ) in section
    assert "| `priority` | string (VARCHAR) | no | `low`, `normal`, `high`, `urgent` |" in section
