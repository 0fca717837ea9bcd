"""The daily run: the steps in order under the data directory's lock, each reported, the
manifest written when all data steps have finished.

``run_daily`` raises :class:`RunFailed` (naming the step and the cause) on the first step that
fails; what that step and the later ones would have published stays unpublished, and the
manifest of the date keeps its previous content, so the next run redoes from there. The
reload step comes after the manifest is written: a server that cannot be told leaves the
run's data published and the reload is retried by the next run of the date.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from serving.daily.lock import run_lock
from serving.daily.manifest import lock_path, read_manifest, write_manifest
from serving.daily.steps import STEPS, Outcome, RunContext, StepFailed

log = logging.getLogger(__name__)

DATA_STEPS = ("pull", "validate", "build", "score", "publish", "retain", "monitor", "retrain")
ALL_STEPS = (*DATA_STEPS, "reload")


@dataclass(frozen=True)
class StepReport:
    """One step's line: ``status`` is running, done, skipped or failed."""

    step: str
    status: str
    seconds: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict:
        return {"step": self.step, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail}


class RunFailed(RuntimeError):
    """A step failed; ``step`` names it, the message says why."""

    def __init__(self, step: str, cause: str):
        super().__init__(f"step {step} failed: {cause}")
        self.step = step
        self.cause = cause


def check_date(as_of: date, today: date | None = None) -> None:
    """A run is for today or a past date (the extraction time is checked by validate)."""
    today = today or datetime.now(UTC).date()
    if as_of > today:
        raise RunFailed("validate", f"as_of {as_of} is in the future (today is {today}, UTC)")


def run_daily(ctx: RunContext, report: Callable[[StepReport], None] = lambda r: None,
              steps: tuple[str, ...] = ALL_STEPS) -> list[StepReport]:
    """Run ``steps`` (in the run's order) for ``ctx.as_of``; returns one report per step."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(unknown)}: choose from "
                         f"{', '.join(ALL_STEPS)}")
    check_date(ctx.as_of)
    data_dir = ctx.settings.data_dir
    reports: list[StepReport] = []
    with run_lock(lock_path(data_dir)):
        manifest = read_manifest(data_dir, ctx.as_of)
        ctx.previous = dict(manifest.get("steps", {}))
        wanted = [s for s in ALL_STEPS if s in steps]
        for name in [s for s in wanted if s in DATA_STEPS]:
            reports.append(_run_step(ctx, name, report))
        if any(s in DATA_STEPS for s in wanted):
            _save(ctx, manifest)
        if "reload" in wanted:
            reports.append(_run_step(ctx, "reload", report))
            _save(ctx, manifest)
    return reports


def _run_step(ctx: RunContext, name: str, report: Callable[[StepReport], None]) -> StepReport:
    report(StepReport(name, "running"))
    began = time.perf_counter()
    try:
        outcome: Outcome = STEPS[name](ctx)
    except StepFailed as exc:
        _failed(name, str(exc), began, report)
    except Exception as exc:  # an unexpected fault still names its step, then stops the run
        log.exception("step %s failed", name)
        _failed(name, f"{type(exc).__name__}: {exc}", began, report)
    if outcome.record is not None:
        ctx.records[name] = outcome.record
    done = StepReport(name, outcome.status, time.perf_counter() - began, outcome.detail)
    report(done)
    return done


def _failed(name: str, cause: str, began: float, report: Callable[[StepReport], None]):
    report(StepReport(name, "failed", time.perf_counter() - began, cause))
    raise RunFailed(name, cause)


def _save(ctx: RunContext, manifest: dict) -> None:
    """The previous records of steps not run this time, this run's on top, written whole;
    left as it is when nothing changed (a rerun of a date is a no-op)."""
    steps = {**manifest.get("steps", {}), **ctx.records}
    if manifest and steps == manifest.get("steps"):
        return
    manifest.update({"as_of": ctx.as_of.isoformat(), "engine": ctx.engine, "steps": steps,
                     "finished_at": datetime.now(UTC).isoformat(timespec="seconds")})
    write_manifest(ctx.settings.data_dir, ctx.as_of, manifest)


def run_one(step: str, as_of: date, settings=None, **options) -> StepReport:
    """One step of the run of ``as_of`` on its own, for orchestrators that give each step its
    own task (Airflow, Dagster): same skipping, lock and manifest as ``propensity run``.
    ``options`` are RunContext's (engine, force, reasons, reload_url, deliver)."""
    from serving.settings import ServingSettings

    ctx = RunContext(settings or ServingSettings(), as_of, **options)
    return run_daily(ctx, steps=(step,))[0]
