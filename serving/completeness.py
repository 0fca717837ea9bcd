"""How complete an explicit feature record is: which of the scoring models' features it lacks,
and how much of a model's importance they carry; a record missing too much is refused.

Computed on the encoded matrices (a missing value is NaN there: absent, null or an unknown
category), with a per-set-of-tasks plan of where each feature sits in each model's matrix.
"""

from __future__ import annotations

import numpy as np

from features.catalogue import CANDIDATE_PRODUCT
from serving.inputs import InputError, Problem
from serving.registry import LoadedModel

MISSING_SHOWN = 5  # missing features named per item, the most important first

Missing = tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]


class Completeness:
    """The missing-feature report of explicit inputs for one set of models."""

    def __init__(self, models: dict[str, LoadedModel], importance: dict[str, np.ndarray]):
        self.models = models
        self.importance = importance
        self._plans: dict[tuple[str, ...], tuple] = {}  # tasks -> `_plan`

    def missing(self, x: dict[str, np.ndarray], n: int) -> Missing:
        """Per row: how many of the scoring models' features are missing (absent, null or an
        unknown category), the largest share of one model's importance they carry, that
        model, and the most important missing features (at most `MISSING_SHOWN`)."""
        names, ranked, sources = self._plan(tuple(x))
        gaps = np.zeros((n, len(names)), dtype=bool)
        share, worst = np.zeros(n), [None] * n
        for task, positions, columns in sources:
            missing = np.isnan(x[task])
            gaps[:, positions] = missing[:, columns]
            task_share = missing @ self.importance[task]
            if (task_share > share).any():
                worst = [task if w else t for w, t in zip(task_share > share, worst,
                                                          strict=True)]
                share = np.maximum(share, task_share)
        shown = np.empty(n, dtype=object)
        shown[:] = [[names[j] for j in np.flatnonzero(row)[:MISSING_SHOWN]]
                    for row in gaps[:, :ranked]]
        return gaps.sum(axis=1), share, worst, shown

    def _plan(self, tasks: tuple[str, ...]
              ) -> tuple[list[str], int, list[tuple[str, list[int], list[int]]]]:
        """The features of `tasks`' models, most important first (the first `ranked` have
        any importance), and where each model's matrix holds them; once per set of tasks."""
        if tasks not in self._plans:
            weight: dict[str, float] = {}
            for task in tasks:
                for f, w in zip(self.models[task].model.features, self.importance[task],
                                strict=True):
                    if f != CANDIDATE_PRODUCT:
                        weight[f] = max(weight.get(f, 0.0), float(w))
            names = sorted(weight, key=lambda f: (-weight[f], f))
            at = {f: j for j, f in enumerate(names)}
            sources, placed = [], set()
            for task in tasks:
                features = self.models[task].model.features
                pairs = [(at[f], j) for j, f in enumerate(features)
                         if f != CANDIDATE_PRODUCT and f not in placed]
                placed.update(features)
                sources.append((task, [p for p, _ in pairs], [j for _, j in pairs]))
            self._plans[tasks] = (names, sum(weight[f] > 0 for f in names), sources)
        return self._plans[tasks]


def refuse_incomplete(missing: Missing, limit: float, where: str) -> None:
    """`InputError` for every row whose missing features carry more than `limit` of a
    model's importance."""
    counts, share, worst, shown = missing
    problems = [
        Problem((where, int(i)), "too_many_missing",
                f"{where}[{i}]: the missing features carry {share[i]:.0%} of the "
                f"{worst[i]} model's importance (at most {limit:.0%} may be missing; "
                f"{counts[i]} features missing, the most important: "
                f"{', '.join(shown[i])}); send them, or null only where truly unknown",
                {"missing_importance": round(float(share[i]), 4), "limit": limit,
                 "model": worst[i], "missing_important": shown[i]})
        for i in np.flatnonzero(share > limit + 1e-9)]  # shares sum to 1 up to rounding
    if problems:
        raise InputError(problems)
