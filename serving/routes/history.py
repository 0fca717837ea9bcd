"""One account's scores over time, from the score history (``serving.history``)."""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from serving.deps import JSON, ReadKey, single_query_values
from serving.history import ScoreHistory
from serving.responses import AUTH_UNAVAILABLE, HISTORY_NOT_FOUND, INVALID_DATES, UNAUTHORIZED
from serving.row import NUMBERS, PROBABILITIES, REASON_COLUMNS, ROW
from serving.schemas import AccountHistory

router = APIRouter(prefix="/v1", tags=["history"], dependencies=[Depends(single_query_values)])
FIELDS = tuple(c.name for c in ROW if c.name != "account_id")


@router.get(
    "/accounts/{account_id}/history", response_model=AccountHistory,
    summary="One account's scores over time",
    responses={**UNAUTHORIZED, **HISTORY_NOT_FOUND, **INVALID_DATES, **AUTH_UNAVAILABLE},
)
def account_history(
    request: Request, _key: ReadKey,
    account_id: Annotated[str, Path(min_length=1, max_length=200, examples=["A0000001"])],
    start: Annotated[date | None, Query(alias="from", description="First run date, inclusive "
                                        "(YYYY-MM-DD).")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last run date, inclusive "
                                      "(YYYY-MM-DD).")] = None,
) -> JSON:
    """Every run of the daily job (`propensity run`) that scored the account, oldest first,
    each with the model versions that scored it. Works without loaded models: the history
    is read from the data directory."""
    if start is not None and end is not None and start > end:
        raise RequestValidationError([{
            "type": "date_order", "loc": ("query", "from"), "input": start.isoformat(),
            "msg": f"from ({start}) is after to ({end})"}])
    history: ScoreHistory = request.app.state.history
    rows = history.account(account_id, start, end)
    if rows.empty and (start is None and end is None or history.account(account_id).empty):
        raise HTTPException(404, {"error": "unknown_account",
                                  "message": f"account {account_id!r} is in no run of the "
                                             "score history"})
    return JSON({"account_id": account_id,
                 "items": [history_item(row) for row in rows.to_dict("records")]})


def history_item(row: dict) -> dict:
    """A history row (batch-file columns, model versions) as the API's item."""
    out: dict = {"as_of": pd.Timestamp(row["as_of"]).date().isoformat()}
    for name in FIELDS:
        value = row.get(name)
        if name in NUMBERS:
            value = None if value is None or math.isnan(value) else float(value)
            if value is not None and name in PROBABILITIES:
                value = round(value, 6)
        elif isinstance(value, float) and math.isnan(value):
            value = None
        out[name] = value
    out["model_versions"] = row["model_versions"]
    out["catalogue_version"] = row.get("catalogue_version")
    reasons = {task: json.loads(row[column]) for task, column in REASON_COLUMNS.items()
               if isinstance(row.get(column), str)}
    out["reasons"] = reasons or None
    return out
