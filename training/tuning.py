"""LightGBM's complexity, chosen inside the cross-validation folds (`training.selection`).

A fixed set of tree settings cannot suit every book: a few thousand accounts want small trees
that look at few features per tree, a large book can afford bigger ones. So the fold loop fits
each of a small grid of settings (``SETTINGS``, simplest first) in every fold, each
early-stopped on the fold's block like the default, and the tree candidate of the model choice
is the setting chosen here by the same rule as the model choice itself: the pooled
out-of-fold log loss, and the simplest setting within one (paired, account-clustered)
standard error of the best. Nothing is chosen on the test rows, and nothing is specific to one
data set: the grid is two points along the usual complexity axis (leaves per tree), and the
folds decide.

The grid is kept at two settings because every setting is one more LightGBM fit per fold
(the demo's `train churn` must stay within twice its cost before cross-validation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TreeSetting:
    """A named set of LightGBM parameters overriding `training.models.DEFAULT_PARAMS`."""

    name: str
    params: dict = field(default_factory=dict)


# simplest first: trees of 4 leaves (interactions of two or three features at most), then the
# project's default of 15 leaves. Everything else (learning rate, leaf size, sampling) stays.
SETTINGS: tuple[TreeSetting, ...] = (
    TreeSetting("leaves_4", {"num_leaves": 4}),
    TreeSetting("leaves_15", {}),
)


def candidate_settings() -> tuple[TreeSetting, ...]:
    """The tree settings every fold fits, simplest first."""
    return SETTINGS


def choose_setting(
    losses: dict[str, np.ndarray], groups: np.ndarray,
    order: tuple[TreeSetting, ...] = SETTINGS,
) -> tuple[TreeSetting, dict[str, dict]]:
    """The simplest setting whose mean out-of-fold log loss is within one paired,
    account-clustered standard error of the lowest; per setting its mean log loss, its
    difference to the best and that error (the report logged with the choice).

    ``losses``: per setting name, the per-row log loss on the same out-of-fold rows.
    """
    from training.selection import paired_se

    names = [s.name for s in order if s.name in losses]
    if not names:
        raise ValueError("no tree setting was fitted: nothing to choose from")
    mean = {k: float(losses[k].mean()) for k in names}
    best = min(names, key=lambda k: (mean[k], names.index(k)))
    report = {}
    for k in names:
        diff = losses[k] - losses[best]
        se = 0.0 if k == best else paired_se(diff, groups)
        report[k] = {"log_loss": mean[k], "difference_to_best": float(diff.mean()),
                     "standard_error": se}
    chosen = next(k for k in names
                  if report[k]["difference_to_best"] <= report[k]["standard_error"])
    return next(s for s in order if s.name == chosen), report
