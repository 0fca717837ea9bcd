"""The model tasks and their registry names (serving pins the same names in a contract test)."""

from __future__ import annotations

TASKS = ("churn", "upsell", "cross-sell")
CHAMPION = "champion"
CHALLENGER = "challenger"


def registered_name(task: str) -> str:
    """MLflow experiment and registered model name of a task."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    return f"propensity-{task}"
