"""Error bodies that stay small: a 422 names the field and the rule, never echoes the input.

FastAPI's own 422 handler returns every error's ``input`` in full, so a 200 MB string came
back as a 200 MB answer; for a rule on the whole body (one of account_ids / features) the input
is the whole body. Here each error keeps ``type``, ``loc``, ``msg`` and ``ctx``, and its input
is cut to an excerpt of EXCERPT_CHARS characters: short values stay as they are, longer strings
(and lists or objects, as their JSON text) end in "…". Field names in ``loc`` (a record's keys
are free text) and messages are cut the same way.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

EXCERPT_CHARS = 80
MESSAGE_CHARS = 300
ELLIPSIS = "…"


def cut(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def excerpt(value: Any) -> Any:
    """A bad value as an error may show it: numbers, booleans and null as they are; strings
    over EXCERPT_CHARS cut; lists and objects kept when their JSON is short, else their JSON
    text cut."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return cut(value)
    if isinstance(value, bytes | bytearray):  # a body that is not JSON
        return cut(value[:4 * EXCERPT_CHARS].decode("utf-8", "replace"))
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return cut(str(value))
    return orjson.loads(text) if len(text) <= EXCERPT_CHARS else cut(text)


CONTEXT_ITEMS = 20


def context_value(value: Any) -> Any:
    """A ``ctx`` value: the service's own words about the rule (expected type, known values,
    the most important missing features), so a list stays a list, of at most CONTEXT_ITEMS
    items each cut like an input."""
    if isinstance(value, list | tuple):
        return [excerpt(item) for item in value[:CONTEXT_ITEMS]]
    return excerpt(value)


def safe_error(error: dict) -> dict:
    """One validation error with its input, location and message cut to size."""
    out: dict[str, Any] = {
        "type": error.get("type"),
        "loc": [cut(part) if isinstance(part, str) else part for part in error.get("loc", ())],
        "msg": cut(str(error.get("msg", "")), MESSAGE_CHARS),
    }
    if "input" in error:
        out["input"] = excerpt(error["input"])
    if error.get("ctx"):
        out["ctx"] = {key: context_value(value) for key, value in jsonable_encoder(
            error["ctx"], custom_encoder={Exception: str}).items()}
    return out


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": [safe_error(e) for e in exc.errors()]}, status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's answer, with 422 lists raised by routes (e.g. unknown feature names) cut to
    size like the validation errors."""
    if exc.status_code == 422 and isinstance(exc.detail, list):
        return JSONResponse({"detail": [safe_error(e) if isinstance(e, dict) else e
                                        for e in exc.detail]},
                            status_code=422, headers=exc.headers)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
