"""The error answers of the API, declared once for the OpenAPI document, with examples.

Routes add them with ``responses={**UNAUTHORIZED, **INVALID, ...}``: every status a route can
answer is documented on that route, with the body's schema and an example of each cause. The
example messages are the ones the code sends (imported from where they are made), so the docs
cannot drift from the answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from serving.auth import COOKIE_REFUSED, MISSING_KEY, UNKNOWN_KEY
from serving.errors import EXCERPT_CHARS
from serving.limits import HOW_TO_FIT, SETTING
from serving.schemas import ReloadResponse


class ErrorDetail(BaseModel):
    error: str = Field(description="A short code a program can test, e.g. `unauthorized`.")
    message: str = Field(description="What was wrong and what to do, for a person.")


class ErrorBody(BaseModel):
    """Every error except 422: one code and one message."""

    detail: ErrorDetail


class FieldError(BaseModel):
    type: str = Field(description="The rule broken, e.g. `string_too_long`, `unknown_feature`.")
    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field "
                                 "path, e.g. `[\"body\", \"features\", 0, \"arr\"]`.")
    msg: str = Field(description="The rule in words.")
    input: Any = Field(None, description=f"The bad value; longer ones cut to {EXCERPT_CHARS} "
                       "characters ending in `…` (objects and lists as their JSON text).")
    ctx: dict[str, Any] | None = Field(None, description="The rule's parameters.")


class ValidationErrorBody(BaseModel):
    """422: one entry per bad field."""

    detail: list[FieldError]


def _error(code: str, message: str, summary: str) -> dict[str, Any]:
    return {"summary": summary, "value": {"detail": {"error": code, "message": message}}}


def _answer(description: str, model: type[BaseModel] = ErrorBody,
            **examples: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "description": description,
            "content": {"application/json": {"examples": examples}}}


_NO_KEY = _error("unauthorized", MISSING_KEY, "No key sent")
_BAD_KEY = _error("unauthorized", UNKNOWN_KEY, "Unknown or revoked key")
_COOKIE = _error("cookie_not_accepted", COOKIE_REFUSED, "Only the page's sign-in cookie sent")

UNAUTHORIZED = {401: _answer(
    "No API key, or one this server does not know (unknown or revoked). Send it as "
    "`Authorization: Bearer <key>` or `X-API-Key: <key>`.", missing=_NO_KEY, unknown=_BAD_KEY)}

FORBIDDEN_COOKIE = {403: _answer(
    "The page's sign-in cookie only reads (GET): send the key in a header.", cookie=_COOKIE)}

FORBIDDEN_ADMIN = {403: _answer(
    "The key has scope `read` (this needs `admin`), or only the page's sign-in cookie was sent.",
    read_key=_error("forbidden", "this key has scope read; admin is required",
                    "A read key"),
    cookie=_COOKIE)}

NOT_FOUND = {404: _answer(
    "The account is not in the served snapshot.",
    unknown_account=_error("unknown_account",
                           "account 'A9999999' is not in the snapshot of 2025-05-01",
                           "Unknown account id"))}

HISTORY_NOT_FOUND = {404: _answer(
    "No run of the score history has scored this account.",
    unknown_account=_error("unknown_account",
                           "account 'A9999999' is in no run of the score history",
                           "Unknown account id"))}

INVALID_DATES = {422: _answer(
    "`from` or `to` is not an ISO date (YYYY-MM-DD), or `from` is after `to`.",
    ValidationErrorBody,
    not_a_date={"summary": "Not an ISO date", "value": {"detail": [
        {"type": "date_from_datetime_parsing", "loc": ["query", "from"],
         "msg": "Input should be a valid date or datetime, invalid character in year",
         "input": "01/03/2025", "ctx": {"error": "invalid character in year"}}]}},
    reversed={"summary": "from after to", "value": {"detail": [
        {"type": "date_order", "loc": ["query", "from"],
         "msg": "from (2025-06-01) is after to (2025-05-01)", "input": "2025-06-01"}]}},
)}

NO_MONITORING = {404: _answer(
    "`propensity monitor` has not saved a result in this data directory yet.",
    no_monitoring=_error("no_monitoring",
                         "no monitor result in data/monitoring: run `propensity monitor`",
                         "The monitor never ran"))}

TOO_LARGE = {413: _answer(
    f"The body is larger than `{SETTING}` (refused unread), or it carries more accounts than "
    "`max_batch_accounts`.",
    body_too_large=_error("body_too_large",
                          f"request body is 52,428,800 bytes; at most 41,025,536 bytes "
                          f"({SETTING}): {HOW_TO_FIT}", "Body over max_body_bytes"),
    too_many_accounts=_error("too_many_accounts", "12000 accounts; at most 10000 per call",
                             "More accounts than max_batch_accounts"))}

INVALID = {422: _answer(
    "A field breaks a rule: `loc` names it, `type` and `msg` the rule, `input` shows at most "
    f"{EXCERPT_CHARS} characters of the value.", ValidationErrorBody,
    wrong_type={"summary": "A value of the wrong type", "value": {"detail": [
        {"type": "string_type", "loc": ["body", "account_ids", 0],
         "msg": "Input should be a valid string", "input": 1}]}},
    unknown_value={"summary": "A value not among the allowed ones", "value": {"detail": [
        {"type": "literal_error", "loc": ["body", "tasks", 1],
         "msg": "Input should be 'churn', 'upsell' or 'cross-sell'", "input": "retention",
         "ctx": {"expected": "'churn', 'upsell' or 'cross-sell'"}}]}},
    unknown_feature={"summary": "A feature no served model has", "value": {"detail": [
        {"type": "unknown_feature", "loc": ["body", "features", 0, "seatz"],
         "msg": "unknown feature 'seatz': not a feature of any served model (see GET "
                "/v1/models)"}]}},
)}

INVALID_QUERY = {422: _answer(
    "A path or query parameter breaks a rule: `loc` names it, `type` and `msg` the rule.",
    ValidationErrorBody,
    out_of_range={"summary": "A number out of range", "value": {"detail": [
        {"type": "less_than_equal", "loc": ["query", "limit"],
         "msg": "Input should be less than or equal to 10000", "input": "20000",
         "ctx": {"le": 10000}}]}},
    repeated={"summary": "A parameter given twice", "value": {"detail": [
        {"type": "too_many_values", "loc": ["query", "owner"],
         "msg": "given 2 times; give it once", "input": ["a", "b"]}]}},
)}

_AUTH_UNAVAILABLE = _error("auth_unavailable",
                           "the API keys file cannot be read; see the server log",
                           "The API keys file is unreadable")

UNAVAILABLE = {503: _answer(
    "Models and snapshot still loading (see /readyz), or the API keys file unreadable.",
    not_ready=_error("not_ready", "models and snapshot are still loading; see /readyz",
                     "Still loading"),
    auth_unavailable=_AUTH_UNAVAILABLE)}

AUTH_UNAVAILABLE = {503: _answer("The API keys file is unreadable.",
                                 auth_unavailable=_AUTH_UNAVAILABLE)}


def _reload_failed(summary: str, error: str, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "value": {
        "reloaded": False, "as_of": "2025-05-01", "error": error,
        "model_versions": {"churn": "3", "upsell": "2", "cross-sell": "2"}, **extra}}


RELOAD_REFUSED = {
    409: _answer("The new snapshot does not fit the models (a missing or wrongly typed "
                 "feature, another catalogue version, too few accounts): nothing is swapped, "
                 "the previous generation keeps serving and `error` says why.", ReloadResponse,
                 refused=_reload_failed(
                     "The snapshot fails a check",
                     "SnapshotRefused: feature snapshot as_of=2025-06-01, column mrr: wrong_type: "
                     "the churn model was trained on a numeric column; the snapshot stores object",
                     problems=[{"table": "feature snapshot as_of=2025-06-01", "column": "mrr",
                                "rule": "wrong_type",
                                "detail": "the churn model was trained on a numeric column; "
                                          "the snapshot stores object"}])),
    503: _answer("The reload failed (models or snapshot unreadable): the previous generation "
                 "keeps serving and `error` says why.", ReloadResponse,
                 failed=_reload_failed("The models cannot be loaded",
                                       "LoadError: no champion for propensity-upsell")),
}
