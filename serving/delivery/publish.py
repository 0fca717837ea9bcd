"""Publish one run into the CRM: the bulk files, then the webhooks (the run's last step but one).

``publish(settings, history, as_of)`` reads the run of ``as_of`` and the run before it from the
score history and touches nothing else the run writes. A webhook failure never raises: the
batch goes to the dead letter, which the next publish retries first. Only delivery's own bad
configuration (a secret's variable unset) and an unreadable history raise ``DeliveryError``,
before anything is written or sent.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pandas as pd

from serving.delivery.changes import PREVIOUS, changed_rows, previous_run
from serving.delivery.dead_letter import DeadLetter
from serving.delivery.files import EXTERNAL_ID, files_folder, write_files
from serving.delivery.webhooks import Batch, Sender, bodies, public_url
from serving.history import ScoreHistory
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

DEAD_LETTER = "dead-letter.jsonl"


class DeliveryError(RuntimeError):
    """Delivery cannot run: the message names the setting or input and what to do."""


@dataclass(frozen=True)
class DeliveryReport:
    """What one publish did (a run's log line and summary)."""

    as_of: date
    previous_as_of: date | None
    accounts: int
    changed: int
    folder: Path | None  # the published files, None when delivery_files is off
    batches: int  # this run's webhook batches, over all targets
    delivered: int  # of those, accepted
    dead_lettered: int  # of those, kept in the dead letter
    retried: int  # earlier dead letters tried again
    recovered: int  # of those, accepted now (removed from the dead letter)
    waiting: int  # batches in the dead letter after this publish
    seconds_files: float
    seconds_webhooks: float

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, date | Path) else v) for k, v in asdict(self).items()}


def dead_letter(settings: ServingSettings) -> DeadLetter:
    return DeadLetter(settings.delivery_path / DEAD_LETTER)


def publish(settings: ServingSettings, history: ScoreHistory, as_of: date) -> DeliveryReport:
    """Write the run's CRM files and POST its changed accounts to the configured webhooks."""
    secrets = webhook_secrets(settings)
    try:
        current = history.read(as_of)
    except FileNotFoundError as exc:
        raise DeliveryError(f"nothing to publish: {exc} (score the run first)") from None
    previous_as_of = previous_run(history.dates(), as_of)
    previous = (history.read(previous_as_of, columns=["account_id", *PREVIOUS])
                if previous_as_of else None)
    versions = history.model_versions(as_of)
    current = with_external_ids(current, external_ids(settings.raw_dir))
    changed = changed_rows(current, previous, previous_as_of,
                           settings.delivery_change_threshold)

    began = time.perf_counter()
    folder = None
    if settings.delivery_files:
        note = {"as_of": as_of, "previous_as_of": previous_as_of,
                "change_threshold": settings.delivery_change_threshold,
                "accounts": len(current), "changed": len(changed), "model_versions": versions}
        folder = write_files(files_folder(settings.delivery_path, as_of), current, changed, note)
    seconds_files = time.perf_counter() - began

    began = time.perf_counter()
    counts = send_webhooks(settings, secrets, changed, as_of, previous_as_of, versions)
    report = DeliveryReport(as_of, previous_as_of, len(current), len(changed), folder,
                            seconds_files=seconds_files,
                            seconds_webhooks=time.perf_counter() - began, **counts)
    log.info("published %s: %d accounts, %d changed since %s", as_of, report.accounts,
             report.changed, previous_as_of or "(first run)")
    return report


def webhook_secrets(settings: ServingSettings) -> dict[str, str]:
    """URL -> shared secret of each configured webhook; DeliveryError naming an unset one."""
    found = {}
    for target in settings.webhooks:
        secret = os.environ.get(target.secret_env, "")
        if not secret:
            raise DeliveryError(
                f"webhooks: {public_url(target.url)} is signed with the secret in the "
                f"environment variable {target.secret_env}, which is not set: set it, or remove "
                "the webhook from the settings")
        found[target.url] = secret
    return found


def external_ids(raw_dir: Path) -> pd.DataFrame | None:
    """account_id -> external_id from the raw accounts, when the export has any; None else."""
    from features.sources import ContractError, open_raw

    try:
        raw = open_raw(raw_dir)
    except ContractError:
        return None
    try:
        if not raw.has("accounts") or EXTERNAL_ID not in raw.src_columns("accounts"):
            return None
        found = raw.sql(f'SELECT CAST(account_id AS VARCHAR) AS account_id, '
                        f'CAST("{EXTERNAL_ID}" AS VARCHAR) AS "{EXTERNAL_ID}" FROM src_accounts '
                        f'WHERE "{EXTERNAL_ID}" IS NOT NULL')
    finally:
        raw.con.close()
    return found if len(found) else None


def with_external_ids(frame: pd.DataFrame, ids: pd.DataFrame | None) -> pd.DataFrame:
    """The run's rows with the CRM's id after account_id (when the export provides one)."""
    if ids is None:
        return frame
    ids = ids.drop_duplicates("account_id")
    found = frame[["account_id"]].merge(ids, on="account_id", how="left")[EXTERNAL_ID]
    out = frame.copy()
    out.insert(1, EXTERNAL_ID, found.astype(object).where(found.notna(), None).to_numpy())
    return out


def send_webhooks(settings: ServingSettings, secrets: dict[str, str], changed: pd.DataFrame,
                  as_of: date, previous_as_of: date | None,
                  versions: dict[str, str | None]) -> dict[str, int]:
    """The dead letters first, then this run's batches, within the time budget."""
    letters = dead_letter(settings)
    waiting = [Batch.from_entry(e) for e in letters.entries()]
    if not secrets and not waiting:
        return dict(batches=0, delivered=0, dead_lettered=0, retried=0, recovered=0, waiting=0)
    deadline = time.monotonic() + settings.webhook_time_budget_seconds
    with httpx.Client(follow_redirects=False) as client:
        sender = Sender(client, settings.webhook_timeout_seconds, settings.webhook_attempts,
                        settings.webhook_backoff_seconds, deadline)
        kept, retried, recovered = retry_dead_letters(sender, secrets, waiting)
        letters.replace([b.entry() for b in kept])
        held = {(b.url, b.idempotency_key) for b in kept}
        counts = dict(batches=0, delivered=0, dead_lettered=0)
        for key, body, accounts in bodies(changed, as_of, previous_as_of, versions,
                                          settings.webhook_batch_size):
            for url, secret in secrets.items():
                counts["batches"] += 1
                if (url, key) in recovered:  # a re-run: its dead letter just got through
                    counts["delivered"] += 1
                    continue
                if (url, key) in held:  # a re-run: its dead letter just failed again
                    counts["dead_lettered"] += 1
                    continue
                batch = Batch(url, key, as_of.isoformat(), accounts, body)
                error = sender.deliver(batch, secret)
                if error is None:
                    counts["delivered"] += 1
                else:
                    counts["dead_lettered"] += 1
                    letters.append(failed(batch, error).entry())
                    held.add((url, key))
    return {**counts, "retried": retried, "recovered": len(recovered), "waiting": len(held)}


def retry_dead_letters(sender: Sender, secrets: dict[str, str], waiting: list[Batch]
                       ) -> tuple[list[Batch], int, set[tuple[str, str]]]:
    """Send the waiting batches again, oldest first. Returns those still failing (and those
    of a webhook no longer configured), how many were tried, and (url, key) of those that
    got through."""
    kept, tried, recovered = [], 0, set()
    for batch in waiting:
        if batch.url not in secrets:
            log.warning("dead letter %s for %s: that webhook is no longer configured; kept",
                        batch.idempotency_key, public_url(batch.url))
            kept.append(batch)
            continue
        tried += 1
        error = sender.deliver(batch, secrets[batch.url])
        if error is None:
            recovered.add((batch.url, batch.idempotency_key))
        else:
            kept.append(failed(batch, error))
    return kept, tried, recovered


def failed(batch: Batch, error: str) -> Batch:
    """The batch as the dead letter keeps it, with why it failed (no secret is ever in it)."""
    log.warning("webhook %s: batch %s of %s (%d accounts) not delivered: %s; kept in the dead "
                "letter for the next run", public_url(batch.url), batch.idempotency_key,
                batch.as_of, batch.accounts, error)
    return replace(batch, attempts=batch.attempts + 1, error=error,
                   failed_at=datetime.now(UTC).isoformat(timespec="seconds"))
