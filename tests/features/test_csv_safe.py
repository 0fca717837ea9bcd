"""Spreadsheet-safe cells: text a spreadsheet would run as a formula gets a leading quote."""

from __future__ import annotations

import pytest

from features.csv_safe import safe_cell, safe_row

PAYLOADS = ['=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_starting_a_formula_gets_a_leading_quote(payload):
    assert safe_cell(payload) == "'" + payload


@pytest.mark.parametrize("value", ["Acme Corp", "", "a=b", "O'Neil", " =1", "'=1"])
def test_other_text_is_unchanged(value):
    assert safe_cell(value) == value


@pytest.mark.parametrize("value", [-12.5, -3, 0.0, None, True])
def test_numbers_and_nulls_stay_as_they_are(value):
    assert safe_cell(value) is value


def test_a_row_is_neutralised_cell_by_cell():
    assert safe_row({"name": "=1+1", "arr": -12.5, "owner": "@x", "rank": 1}) == {
        "name": "'=1+1", "arr": -12.5, "owner": "'@x", "rank": 1}
