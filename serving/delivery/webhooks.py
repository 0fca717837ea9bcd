"""Webhooks: each run's changed accounts POSTed in signed batches, retried, never blocking.

A batch's body is JSON: the run (``as_of``, ``previous_as_of``, ``model_versions``) and its
accounts, each with its own ``idempotency_key`` (per account, as_of and model versions); the
batch's ``Idempotency-Key`` header is derived from its accounts' keys, so a batch sent again
(a retry, the next run's dead-letter pass, a forced re-run) carries the same key and a receiver
can drop the duplicate. Timeouts, connection errors, 408, 425, 429 and 5xx answers are retried
with exponential backoff (tenacity); another 4xx is final. Every wait and timeout is cut to the
run's remaining time budget. Secrets are read from the environment and never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date

import httpx
import pandas as pd
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from serving.delivery.signing import signed_headers
from serving.row import REASON_COLUMNS

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_STATUSES = frozenset({408, 425, 429})
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class Batch:
    """One POST: its target, its exact body and its idempotency key (a dead-letter line)."""

    url: str
    idempotency_key: str
    as_of: str
    accounts: int
    body: str
    attempts: int = 0
    error: str | None = None
    failed_at: str | None = None

    def entry(self) -> dict:
        return asdict(self)

    @classmethod
    def from_entry(cls, entry: dict) -> Batch:
        return cls(**{k: entry.get(k) for k in cls.__dataclass_fields__})


class Undelivered(Exception):
    """One try failed; ``retryable`` says whether another try may succeed."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def account_key(account_id: str, as_of: date, versions: dict[str, str | None]) -> str:
    """The idempotency key of one account's scores: same account, date and models, same key."""
    text = json.dumps([str(account_id), as_of.isoformat(), sorted(versions.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def batch_key(account_keys: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(account_keys)).encode()).hexdigest()[:32]


def bodies(changed: pd.DataFrame, as_of: date, previous_as_of: date | None,
           versions: dict[str, str | None], size: int) -> Iterator[tuple[str, str, int]]:
    """(idempotency key, JSON body, accounts) of each batch of ``size`` changed accounts."""
    run = {"as_of": as_of.isoformat(),
           "previous_as_of": previous_as_of.isoformat() if previous_as_of else None,
           "model_versions": versions}
    for start in range(0, len(changed), size):
        items = account_items(changed.iloc[start:start + size], as_of, versions)
        key = batch_key([item["idempotency_key"] for item in items])
        body = json.dumps({**run, "accounts": items}, separators=(",", ":"), allow_nan=False)
        yield key, body, len(items)


def account_items(rows: pd.DataFrame, as_of: date, versions: dict[str, str | None]
                  ) -> list[dict]:
    """Changed rows as JSON-ready dicts: nulls for NaN, reasons nested, ``changes`` a list."""
    reasons = {task: column for task, column in REASON_COLUMNS.items() if column in rows}
    plain = rows.drop(columns=[*reasons.values(), "as_of", "previous_as_of"], errors="ignore")
    records = plain.astype(object).where(plain.notna(), None).to_dict("records")
    cells = {task: rows[column].tolist() for task, column in reasons.items()}
    for k, item in enumerate(records):
        item["changes"] = item["changes"].split(";") if item.get("changes") else []
        item["reasons"] = {task: json.loads(found[k]) for task, found in cells.items()
                           if isinstance(found[k], str)}
        item["idempotency_key"] = account_key(item["account_id"], as_of, versions)
    return records


def public_url(url: str) -> str:
    """The URL as logs show it: no user, password or query (where tokens hide)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


class Sender:
    """POSTs batches with retries inside one run's time budget."""

    def __init__(self, client: httpx.Client, timeout: float, attempts: int, backoff: float,
                 deadline: float):
        self.client = client
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.deadline = deadline  # time.monotonic() at which the budget is spent

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def deliver(self, batch: Batch, secret: str) -> str | None:
        """Send ``batch`` until it is accepted or the tries or the budget run out: None when
        delivered, else why not."""
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            self.post(batch, secret)

        if self.remaining() <= 0:
            return "not tried: the run's webhook time budget was spent"
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | stop_before_delay(max(self.remaining(), 0)),
            wait=wait_exponential(multiplier=self.backoff, max=MAX_BACKOFF_SECONDS),
            retry=retry_if_exception(lambda e: isinstance(e, Undelivered) and e.retryable),
            reraise=True,
        )
        try:
            retrying(attempt)
        except Undelivered as exc:
            return f"{exc} (after {tries} {'try' if tries == 1 else 'tries'})"
        return None

    def post(self, batch: Batch, secret: str) -> None:
        """One try; raises Undelivered."""
        timeout = min(self.timeout, self.remaining())
        if timeout <= 0:
            raise Undelivered("the run's webhook time budget was spent", retryable=False)
        body = batch.body.encode()
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: batch.idempotency_key,
                   **signed_headers(secret, math.floor(time.time()), body)}
        try:
            answer = self.client.post(batch.url, content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise Undelivered(f"no answer within {timeout:.3g} s", retryable=True) from None
        except httpx.HTTPError as exc:
            raise Undelivered(f"request failed ({type(exc).__name__})", retryable=True) from None
        status = answer.status_code
        if status in RETRY_STATUSES or status >= 500:
            raise Undelivered(f"answered HTTP {status}", retryable=True)
        if not 200 <= status < 300:
            raise Undelivered(f"answered HTTP {status}", retryable=False)
