"""Cells that are safe to open in a spreadsheet (CSV / formula injection).

Excel, LibreOffice and Google Sheets run a text cell that begins with ``=``, ``+``, ``-``, ``@``,
TAB or CR as a formula (``=HYPERLINK(...)``, ``+cmd|' /C calc'!A0``). Account names and owners
come from upstream systems, so every CSV the project writes passes its cells through
`safe_cell`: OWASP's advice, a leading single quote, which spreadsheets show as text. Only text is
touched: a number (``-12.5`` in a numeric column) stays a number.
"""

from __future__ import annotations

from collections.abc import Mapping

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_row(row: Mapping[str, object]) -> dict[str, object]:
    """`safe_cell` over every cell of a CSV row (a csv.DictWriter row)."""
    return {key: safe_cell(value) for key, value in row.items()}
