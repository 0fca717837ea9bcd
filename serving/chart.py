"""A small inline SVG line chart of probabilities over time, drawn on the server.

The page has no JavaScript build, so the account view's chart is plain SVG geometry computed
here (the template only places it): one polyline and a dot per run for each series, a y axis
from 0 to a round ceiling above the highest value, and the first and last dates on the x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 24  # margins for the axis labels


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class of its line and dots
    points: list[tuple[float, float, float]]  # (x, y, value) per run with a value

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_labels: list[tuple[float, str]]  # (x, label)
    baseline: float
    left: float
    right: float


def probability_chart(dates: list[date], values: dict[str, list[float | None]],
                      classes: dict[str, str]) -> Chart:
    """The chart of each named series of probabilities (None: no value that run) over
    ``dates`` (oldest first)."""
    known = [v for series in values.values() for v in series if v is not None]
    top = max(0.1, math.ceil(round(max(known, default=0.1) * 10, 9)) / 10)  # round, >= 10 %
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(dates) == 1 else plot_w * i / (len(dates) - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    series = [Series(name, classes.get(name, ""),
                     [(x(i), y(v), v) for i, v in enumerate(vs) if v is not None])
              for name, vs in values.items()]
    ticks = [(y(top * k / 2), f"{top * k / 2:.0%}") for k in range(3)]
    labels = [(x(0), str(dates[0]))] if dates else []
    if len(dates) > 1:
        labels.append((x(len(dates) - 1), str(dates[-1])))
    return Chart(WIDTH, HEIGHT, series, ticks, labels, y(0), LEFT, WIDTH - RIGHT)
