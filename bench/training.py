"""Benchmark: training time and peak memory of the churn and upsell models, stage by stage.

Runs ``propensity train <task>`` in a child process per task (so its CPU time and peak RSS are
its own, read with ``os.wait4``) on a data directory holding raw tables and a monthly snapshot
grid; makes one (generate + build) when none is given. The child wraps the stages of training
with timers and prints, per stage: calls, wall seconds, CPU seconds, the peak RSS reached
inside it (Linux: the peak is reset at each stage's start through ``/proc/self/clear_refs``)
and the RSS held when it started (its own memory is the difference).
The fold rows name each cross-validation fit (LightGBM with its trees, logistic regression).

    python -m bench.training [--data-dir DIR | --accounts 100000 --months 24] [--tasks churn,upsell]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES: list[dict] = []  # filled in the child
_OPEN: list[dict] = []
_STARTED = itertools.count()


def _propensity(*args: str) -> list[str]:
    return [sys.executable, "-c", "from propensity_cli import app; app()", *args]


def _child(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS (MB) of one child, and its stdout."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[-4:])} failed:\n{err.read().decode()[-3000:]}")
    seconds = time.perf_counter() - began
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode()


def prepare(accounts: int, months: int, root: Path) -> Path:
    data = root / f"n{accounts}"
    subprocess.run(_propensity("data", "generate", "--accounts", str(accounts), "--months",
                               str(months), "--start", "2024-01-01", "--data-dir", str(data)),
                   check=True, capture_output=True)
    end_year, end_month = divmod(2024 * 12 + months, 12)
    subprocess.run(_propensity("features", "build", "--from", "2024-02-01", "--to",
                               f"{end_year}-{end_month + 1:02d}-01", "--data-dir", str(data)),
                   check=True, capture_output=True)
    return data


# --- the child: training with stage timers ------------------------------------------------


def _vm(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def _time(owner: object, attr: str, label) -> None:
    """Replace ``owner.attr`` by a timed call; ``label(*args)`` names the stage of a call."""
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        if _OPEN:  # what the enclosing stage reached before this one resets the peak
            _OPEN[-1]["peak_mb"] = max(_OPEN[-1]["peak_mb"], _vm("VmHWM"))
        _reset_peak()
        stage = {"stage": label(*args, **kwargs), "depth": len(_OPEN), "peak_mb": 0.0,
                 "held_mb": _vm("VmRSS"), "start": next(_STARTED)}
        _OPEN.append(stage)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            result = fn(*args, **kwargs)
            rounds = getattr(result, "current_iteration", None)
            if callable(rounds):
                stage["trees"] = result.current_iteration()
            return result
        finally:
            stage["wall_s"] = time.perf_counter() - wall
            stage["cpu_s"] = time.process_time() - cpu
            stage["peak_mb"] = max(stage["peak_mb"], _vm("VmHWM"))
            _OPEN.pop()
            if _OPEN:
                _OPEN[-1]["peak_mb"] = max(_OPEN[-1]["peak_mb"], stage["peak_mb"])
            STAGES.append(stage)

    setattr(owner, attr, timed)


def _named(name: str):
    return lambda *_a, **_k: name


def _fold_or_all(fold: str, whole: str):
    """The first positional argument after ``self`` is the fit's rows (None: every row); a
    LightGBM fit's tree setting (its ``num_leaves``) is named after it."""
    def label(_self, rows=None, *_a, params=None, **_k):
        leaves = (params or {}).get("num_leaves")
        name = whole if rows is None else fold
        return name if leaves is None or "logistic" in name else f"{name} ({leaves} leaves)"
    return label


def instrument() -> None:
    """Timers on the stages of `training.train.train` (they are module attributes looked up
    at call time, so wrapping them here times the real run)."""
    import features.validation
    from training import baselines, calibration, model_logging, models, selection
    from training import train as training

    _time(features.validation, "load_tables", _named("load raw tables"))
    _time(training, "training_rows", _named("training rows (date by date, matrix)"))
    _time(training, "task_dataset", _named("test dataset (snapshots + labels)"))
    _time(models, "model_matrix", _named("feature matrix"))
    _time(models, "to_model_frame", _named("model frame"))
    _time(selection, "select_and_refit", _named("cross-validation + refit"))
    _time(models, "lightgbm_dataset", _named("LightGBM Dataset (binned once)"))
    _time(selection.FoldData, "fit_lightgbm", _fold_or_all("fold LightGBM fit", "refit LightGBM"))
    _time(selection.FoldData, "fit_logistic",
          _fold_or_all("fold logistic fit", "refit logistic"))
    _time(calibration, "fit_calibrator", _named("calibration"))
    _time(baselines.LogisticRegression, "fit", _named("logistic regression (sklearn)"))
    _time(baselines, "reference_scores", _named("health scorecard, customer score"))
    _time(training, "intervals", _named("bootstrap intervals"))
    _time(training, "_log_report", _named("report plots"))
    _time(model_logging, "log_propensity_model", _named("log + register model"))
    _time(training, "train", _named("train (whole)"))


def run_child(task: str, data: Path) -> None:
    """``propensity train TASK --json`` in this process, timed; its stages on the last line."""
    import io

    from propensity_cli import app

    instrument()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        app(["train", task, "--json", "--data-dir", str(data)], standalone_mode=False)
    text = out.getvalue()
    summary = json.loads(text[text.index("\n{") + 1 if not text.startswith("{") else 0:])
    print(json.dumps({"result": summary, "stages": STAGES}, default=str))


# --- the parent ---------------------------------------------------------------------------


def stage_table(stages: list[dict]) -> list[str]:
    """One line per stage (calls summed, in the order they first started, nested stages
    indented), then one line per cross-validation fit."""
    lines = [f"  {'stage':<40} {'calls':>5} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} "
             f"{'held MB':>8}"]
    merged: dict[str, dict] = {}
    for s in stages:
        if s["stage"].startswith("fold "):
            continue
        m = merged.setdefault(s["stage"], {"calls": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                           "peak_mb": 0.0, "held_mb": 0.0,
                                           "depth": s["depth"]})
        m["calls"] += 1
        m["wall_s"] += s["wall_s"]
        m["cpu_s"] += s["cpu_s"]
        m["peak_mb"] = max(m["peak_mb"], s["peak_mb"])
        m["held_mb"] = max(m["held_mb"], s.get("held_mb", 0.0))
    first = {}
    for s in sorted(stages, key=lambda s: s["start"]):
        first.setdefault(s["stage"], s["start"])
    for name, m in sorted(merged.items(), key=lambda kv: first[kv[0]]):
        lines.append(f"  {'  ' * m['depth'] + name:<40} {m['calls']:>5} {m['wall_s']:>8.1f} "
                     f"{m['cpu_s']:>8.1f} {m['peak_mb']:>8.0f} {m['held_mb']:>8.0f}")
    folds = sorted((s for s in stages if s["stage"].startswith("fold ")),
                   key=lambda s: s["start"])
    fold = 1
    for s in folds:
        trees = f" ({s['trees']} trees)" if "trees" in s else ""
        lines.append(f"    fold {fold}: {s['stage'][5:] + trees:<31} {'':>5} "
                     f"{s['wall_s']:>8.1f} {s['cpu_s']:>8.1f} {s['peak_mb']:>8.0f} "
                     f"{s.get('held_mb', 0.0):>8.0f}")
        fold += "logistic" in s["stage"]  # a fold's logistic fit is its last
    return lines + [""] + fit_summary(stages)


def fit_summary(stages: list[dict]) -> list[str]:
    """The goal's figures: the slowest and the largest single fit (fold or refit), and the
    whole cross-validated selection (every fold fit) beside the refit."""
    fits = [s for s in stages if s["stage"].startswith(("fold ", "refit "))]
    if not fits:
        return []
    slowest = max(fits, key=lambda s: s["wall_s"])
    largest = max(fits, key=lambda s: s["peak_mb"])
    folds = [s for s in fits if s["stage"].startswith("fold ")]
    refits = [s for s in fits if s["stage"].startswith("refit ")]
    whole = next((s for s in stages if s["stage"] == "cross-validation + refit"), None)
    out = [f"  slowest fit: {slowest['stage']}, {slowest['wall_s']:.1f} s wall, "
           f"{slowest['cpu_s']:.1f} CPU-s (goal: 60 s)",
           f"  largest fit: {largest['stage']}, {largest['peak_mb']:,.0f} MB process peak "
           "(goal: 3,000 MB)",
           f"  cross-validation: {len(folds)} fold fits, {sum(s['wall_s'] for s in folds):.1f} s "
           f"wall, {sum(s['cpu_s'] for s in folds):.1f} CPU-s; refit: "
           f"{sum(s['wall_s'] for s in refits):.1f} s wall, "
           f"{sum(s['cpu_s'] for s in refits):.1f} CPU-s"]
    if whole:
        out.append(f"  selection + refit, everything included: {whole['wall_s']:.1f} s wall, "
                   f"{whole['cpu_s']:.1f} CPU-s")
    return out


def tree_line(selection: dict) -> str:
    """The chosen tree setting, the book's learning rate and patience (`book_params`; none
    logged: the defaults) and the trees of the folds (scaled to all rows) and of the refit."""
    setting = selection.get("lightgbm_setting", {})
    book = setting.get("book") or {"learning_rate": 0.03, "early_stopping_rounds": 100}
    rounds = selection.get("rounds", {})
    return (f"  trees: setting {setting.get('name')}, learning rate {book['learning_rate']:g}, "
            f"patience {book['early_stopping_rounds']}; fold rounds (scaled) "
            f"{rounds.get('folds')}, refit {rounds.get('final')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--tasks", default="churn,upsell")
    parser.add_argument("--child-task", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_task:
        run_child(args.child_task, args.data_dir)
        return

    root = Path(tempfile.mkdtemp(prefix="propensity-bench-train-"))
    try:
        data = args.data_dir or prepare(args.accounts, args.months, root)
        header = (f"{'task':<8} {'train rows':>11} {'test rows':>10} {'seconds':>8} "
                  f"{'CPU s':>7} {'peak MB':>8} {'ROC AUC':>8} {'logistic':>9} {'oracle':>7} "
                  f"{'ECE':>7} {'chosen':>9}")
        summary = []
        for task in args.tasks.split(","):
            shutil.rmtree(data / "mlflow", ignore_errors=True)  # a fresh registry per task
            seconds, cpu, peak, out = _child(
                [sys.executable, "-m", "bench.training", "--child-task", task,
                 "--data-dir", str(data)])
            report = json.loads(out.strip().splitlines()[-1])
            # the stage timers reset the kernel's high-water mark (clear_refs), which wait4's
            # ru_maxrss then misses: the run's peak is the highest stage peak
            peak = max([peak, *(st["peak_mb"] for st in report["stages"])])
            r = report["result"]
            oracle = r["oracle"]["roc_auc"] if r.get("oracle") else float("nan")
            summary.append(
                f"{task:<8} {r['rows']['train']:>11,} {r['rows']['test']:>10,} {seconds:>8.1f} "
                f"{cpu:>7.1f} {peak:>8.0f} {r['metrics']['roc_auc']:>8.4f} "
                f"{r['baselines']['logistic']['roc_auc']:>9.4f} {oracle:>7.4f} "
                f"{r['metrics']['ece']:>7.4f} {r['selection']['chosen']:>9}")
            print(f"\n{task}: where the time goes")
            print("\n".join(stage_table(report["stages"])))
            print(tree_line(r.get("selection", {})))
            print(f"\n{header}\n{summary[-1]}")  # now, in case a later task is stopped
            sys.stdout.flush()
        print("\n" + header)
        print("\n".join(summary))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
