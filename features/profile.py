"""What a snapshot's features hold: per feature, the share of nulls and of its most common
value, the source table it needs and whether the export has it.

A feature whose table is absent is null everywhere; one whose event type never occurs is zero
everywhere. Neither tells a model anything, and a user should hear of it rather than find it
out from a flat model: ``propensity data profile`` and the end of ``features build`` print this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from features.catalogue import FeatureGroup

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FeatureProfile:
    """One feature of one snapshot."""

    family: str
    feature: str
    source: str
    source_present: bool
    null_share: float  # share of accounts with a null value
    top_share: float  # share of accounts holding the most common non-null value (1 = constant)

    @property
    def status(self) -> str:
        """"all null", "constant", or "" for a feature that varies."""
        if self.null_share >= 1.0:
            return "all null"
        if self.top_share >= 1.0:
            return "constant"
        return ""


def profile_snapshot(snapshot: pd.DataFrame, groups: list[FeatureGroup],
                     present: frozenset[str]) -> list[FeatureProfile]:
    """The profile of every catalogue feature of ``snapshot`` (a feature missing from it counts
    as all null), in catalogue order."""
    rows = len(snapshot)
    profiles = []
    for group in groups:
        for feature in group.features:
            if feature.name in snapshot.columns and rows:
                values = snapshot[feature.name]
                nulls = int(values.isna().sum())
                counts = values.value_counts(dropna=True)
                top = int(counts.iloc[0]) if len(counts) else 0
            else:
                nulls, top = rows, 0
            profiles.append(FeatureProfile(
                feature.family, feature.name, feature.source,
                all(s in present for s in feature.sources),
                nulls / rows if rows else 1.0, top / rows if rows else 0.0,
            ))
    return profiles


def summary(profiles: list[FeatureProfile], present: frozenset[str]) -> str:
    """One line: how many features are all null or constant, and which tables are absent."""
    null = [p for p in profiles if p.status == "all null"]
    constant = [p for p in profiles if p.status == "constant"]
    absent = sorted({s for p in profiles for s in p.source.split("+")} - present)
    text = (f"{len(profiles)} features: {len(null)} all null, {len(constant)} constant, "
            f"{len(profiles) - len(null) - len(constant)} varying")
    if absent:
        text += f"; tables absent: {', '.join(absent)}"
    return text
