"""The baselines the model must beat: a regularised logistic regression, a fitted health
scorecard, and (when the export has one) the customer's own health score.

The logistic regression is what a careful analyst fits in an afternoon; the health scorecard is
what customer-success tools ship (a handful of normalised health measures, weighted), with its
weights fitted and its signs checked on the training dates so that it is never below chance for
lack of a sign. If the model does not beat them, the extra machinery is not worth running.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from training.linear_design import LinearDesign
from training.models import FeatureSchema, model_matrix

LOGISTIC_C = 0.1
LOGISTIC_C_GRID = (0.01, 0.1, 1.0, 10.0)
STANDARD_CLIP = 5.0  # standard deviations; see logistic_baseline


def logistic_baseline(schema: FeatureSchema, seed: int, tune: bool = False) -> Pipeline:
    """L2 logistic regression over the schema's features, preprocessing included.

    Numerics: median imputation plus a missing-indicator column, then standardisation, then
    clipping to +-``STANDARD_CLIP`` standard deviations: a column that barely varies on the
    training rows (a measure recorded only lately, a rare missing flag) otherwise scores a new
    row thousands of deviations out and its coefficient alone decides the probability (seen in
    the cross-validation's first folds: out-of-fold log loss 1.6 where the trees had 0.21).
    Categoricals: one-hot over the schema's fixed levels; unknown or missing levels give all
    zeros. The first step is `as_matrix`, so `fit` / `predict_proba` take raw feature frames
    (extra columns ignored), model frames, or the `training.models.model_matrix` the
    cross-validation already holds (read as it is: no whole-frame copy). C is fixed at 0.1 by
    default: on standardised features and the tens of thousands of rows a snapshot grid holds,
    C between 0.01 and 10 moves AUC by well under a point, and a fixed C keeps the baseline
    fast and deterministic. `tune=True` chooses C from (0.01, 0.1, 1, 10) by 5-fold
    cross-validated log loss instead, for small tables where regularisation matters.
    """
    # one preallocated design, column block by column block: the same numbers as
    # ColumnTransformer(SimpleImputer(median, add_indicator) -> StandardScaler -> clip,
    # OneHotEncoder) without its whole-design temporaries (training.linear_design)
    columns = LinearDesign(len(schema.numeric),
                           tuple(len(v) for v in schema.categorical.values()), STANDARD_CLIP)
    if tune:
        model = LogisticRegressionCV(
            Cs=list(LOGISTIC_C_GRID),
            cv=5,
            scoring="neg_log_loss",
            max_iter=2000,
            l1_ratios=(0.0,),
            use_legacy_attributes=False,
            random_state=seed,  # plain L2
        )
    else:
        model = LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=seed)
    return Pipeline(
        [
            ("frame", FunctionTransformer(as_matrix, kw_args={"schema": schema})),
            ("columns", columns),
            ("model", model),
        ]
    )


def as_matrix(x: pd.DataFrame | np.ndarray, schema: FeatureSchema) -> np.ndarray:
    """A frame as its `model_matrix`; a matrix (already in the schema's columns) as it is."""
    if isinstance(x, np.ndarray):
        if x.ndim != 2 or x.shape[1] != len(schema.columns):
            raise ValueError(f"a feature matrix needs {len(schema.columns)} columns (the "
                             f"schema's), got shape {x.shape}")
        return x
    return model_matrix(x, schema)


def design_sources(pipeline: Pipeline, schema: FeatureSchema) -> list[str]:
    """The schema column behind each column of a fitted `logistic_baseline`'s design matrix, in
    order: the numerics, the missing indicators of those that had missing values in training,
    then each categorical's levels (the matrix input has no column names to carry)."""
    flagged = design_numbers(pipeline)["flagged"]
    return [*schema.numeric, *(schema.numeric[j] for j in flagged),
            *(col for col, levels in schema.categorical.items() for _ in levels)]


def design_numbers(pipeline: Pipeline) -> dict:
    """A fitted `logistic_baseline`'s preprocessing numbers: per numeric the imputation
    ``median``; ``flagged`` (the numerics with a missing indicator); ``mean`` and ``scale`` over
    the numerics then the indicators; ``clip`` (None: none). Reads both the `LinearDesign` and
    the ColumnTransformer of pipelines fitted before it."""
    columns = pipeline.named_steps["columns"]
    if isinstance(columns, LinearDesign):
        return {"median": columns.median_, "flagged": columns.flagged_.tolist(),
                "mean": columns.mean_, "scale": columns.scale_, "clip": float(columns.clip)}
    numeric = columns.named_transformers_["numeric"]
    imputer, scaler = numeric.named_steps["impute"], numeric.named_steps["scale"]
    clipper = numeric.named_steps.get("clip")
    return {"median": imputer.statistics_,
            "flagged": list(imputer.indicator_.features_) if imputer.indicator_ is not None
            else [],
            "mean": scaler.mean_, "scale": scaler.scale_,
            "clip": None if clipper is None else float(clipper.kw_args["a_max"])}


@dataclass(frozen=True)
class Measure:
    """A health measure of the scorecard: a snapshot column and the direction in which it is
    expected to raise the task's label (+1: a higher value makes the label likelier)."""

    column: str
    toward_label: int  # +1 or -1
    what: str  # what a customer-success team calls it


#: Churn: the measures customer-success tools put on a health card. Expected directions are
#: the usual reading (falling usage, tickets, detractors, a near renewal raise churn).
CHURN_MEASURES: tuple[Measure, ...] = (
    Measure("usage_trend_30d", -1, "usage trend"),
    Measure("seat_utilisation_30d", -1, "usage level (seats used)"),
    Measure("days_since_last_event", +1, "days since last use"),
    Measure("tickets_90d", +1, "support tickets"),
    Measure("escalations_90d", +1, "escalations"),
    Measure("nps_last", -1, "NPS"),
    Measure("tenure_days", -1, "tenure"),
    Measure("days_to_renewal", -1, "renewal proximity"),
    Measure("champions", -1, "champions"),
    Measure("days_since_last_qbr", +1, "days since last business review"),
    Measure("cancellation_notice", +1, "cancellation notice"),
)

#: Expansion (upsell, cross-sell): readiness to buy more.
EXPANSION_MEASURES: tuple[Measure, ...] = (
    Measure("seat_utilisation_30d", +1, "usage level (seats used)"),
    Measure("usage_trend_30d", +1, "usage trend"),
    Measure("active_users_change_30d", +1, "active-user growth"),
    Measure("nps_last", +1, "NPS"),
    Measure("escalations_90d", -1, "escalations"),
    Measure("tenure_days", +1, "tenure"),
    Measure("days_to_renewal", -1, "renewal proximity"),
    Measure("executive_sponsor_present", +1, "executive sponsor"),
    Measure("champions", +1, "champions"),
    Measure("cancellation_notice", -1, "cancellation notice"),
)

TASK_MEASURES = {"churn": CHURN_MEASURES, "upsell": EXPANSION_MEASURES,
                 "cross-sell": EXPANSION_MEASURES}

NEUTRAL = 50.0  # the sub-score of a missing value


def task_measures(task: str) -> tuple[Measure, ...]:
    measures = TASK_MEASURES.get(task)
    if measures is None:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASK_MEASURES)}")
    return measures


@dataclass
class Scorecard:
    """A fitted health scorecard: per measure a 0-100 sub-score (the value's percentile among
    the training rows, turned so that 100 points toward the label) and a non-negative weight.

    ``weights`` are in points summing to 100 (0: the measure was dropped); ``flipped`` names
    the measures whose direction on the training dates was the opposite of the expected one
    (they are used the way the data point); ``skipped`` those absent, all-null or constant.
    """

    measures: tuple[Measure, ...]
    reference: dict[str, np.ndarray]  # sorted non-null training values per measure
    direction: dict[str, int]  # +1 / -1 as used (the expected one, or flipped)
    weights: dict[str, float]
    model: LogisticRegression | None  # points -> probability; None: no usable measure
    base_rate: float
    flipped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def sub_scores(self, df: pd.DataFrame) -> pd.DataFrame:
        """0-100 per used measure; 100 = the label is likeliest; a missing value scores 50."""
        out = {}
        for name, ref in self.reference.items():
            values = _numeric(df, name)
            lo = np.searchsorted(ref, values, side="left")
            hi = np.searchsorted(ref, values, side="right")
            pct = 100.0 * (lo + hi) / (2 * len(ref))  # mid-rank percentile: ties share it
            pct = pct if self.direction[name] > 0 else 100.0 - pct
            out[name] = np.where(np.isnan(values), NEUTRAL, pct)
        return pd.DataFrame(out, index=df.index)

    def points(self, df: pd.DataFrame) -> np.ndarray:
        """The card: the weighted sub-scores, 0-100 (100 = the label is likeliest)."""
        subs = self.sub_scores(df)
        total = np.zeros(len(df))
        for name, w in self.weights.items():
            total += w * subs[name].to_numpy() / 100.0
        return total

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Probability of the label: the logistic fit of the weighted sub-scores."""
        if self.model is None:
            return np.full(len(df), self.base_rate)
        return self.model.predict_proba(self._design(self.sub_scores(df)))[:, 1]

    def _design(self, subs: pd.DataFrame) -> np.ndarray:
        used = [n for n, w in self.weights.items() if w > 0]
        return subs[used].to_numpy() / 100.0

    def table(self) -> str:
        """The fitted card as Markdown: measure, direction used, weight in points."""
        rows = ["| measure | higher value means | weight |", "|---|---|---:|"]
        for m in self.measures:
            if m.column in self.weights:
                sign = self.direction[m.column]
                note = " (flipped: the data disagreed)" if m.column in self.flipped else ""
                rows.append(f"| {m.column} | {'more' if sign > 0 else 'less'} likely{note} | "
                            f"{self.weights[m.column]:.1f} |")
        return "\n".join(rows)


def fit_scorecard(df: pd.DataFrame, y: np.ndarray, measures: tuple[Measure, ...],
                  seed: int = 0) -> Scorecard:
    """Fit the scorecard's directions and weights on training rows ``df`` / ``y``.

    1. Each measure present with at least two distinct values becomes a percentile sub-score
       over the training rows (missing: 50).
    2. Signs are checked: a measure whose sub-score ranks the training labels below chance in
       its expected direction (univariate AUC < 0.5) is flipped, and named in ``flipped``.
    3. Weights: an L2 logistic regression of the label on the sub-scores; a measure whose
       weight comes out negative (it only helps by cancelling another, correlated one) is
       dropped and the rest refitted, until every weight is positive. Weights are reported
       in points out of 100, and the fit maps the card to a probability.
    4. If the card still ranked the training rows below chance (not seen; guarded), the single
       best measure is used alone. Each used sub-score ranks at or above chance on the training
       rows, so the card does too: it is never below chance for lack of a sign.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype="int64")
    reference, direction, flipped, skipped = {}, {}, [], []
    for m in measures:
        values = _numeric(df, m.column)
        known = values[~np.isnan(values)]
        if len(np.unique(known)) < 2:
            skipped.append(m.column)
            continue
        reference[m.column] = np.sort(known)
        direction[m.column] = m.toward_label
    card = Scorecard(measures, reference, direction, {}, None, float(y.mean()), flipped,
                     skipped)
    if not reference or len(np.unique(y)) < 2:
        return card
    subs = card.sub_scores(df)
    for name in list(reference):
        if roc_auc_score(y, subs[name]) < 0.5:
            direction[name] = -direction[name]
            flipped.append(name)
    subs = card.sub_scores(df)
    used = list(reference)
    while used:
        model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
        model.fit(subs[used].to_numpy() / 100.0, y)
        coef = model.coef_[0]
        if (coef > 0).all():
            break
        used = [n for n, c in zip(used, coef, strict=True) if c > 0]
    if not used:
        return card
    total = float(model.coef_[0].sum())
    card.weights = {n: 100.0 * float(c) / total for n, c in zip(used, model.coef_[0],
                                                                 strict=True)}
    card.weights.update({n: 0.0 for n in reference if n not in used})
    card.weights = {n: card.weights[n] for n in reference}  # the measures' order
    card.model = model
    if roc_auc_score(y, card.points(df)) < 0.5:  # guard: the best single measure alone
        best = max(reference, key=lambda n: roc_auc_score(y, subs[n]))
        card.weights = {n: (100.0 if n == best else 0.0) for n in reference}
        card.model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(
            subs[[best]].to_numpy() / 100.0, y)
    return card


def _numeric(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64 with NaN for missing; all NaN when the frame lacks it."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return (
        pd.to_numeric(df[name], errors="coerce")
        .astype("Float64")
        .to_numpy(dtype="float64", na_value=np.nan)
    )


@dataclass
class CustomerScore:
    """The customer's own health score mapped to a probability of the label.

    The map is a logistic fit of the label on the score over the training rows: monotone (so
    the score's ranking, and its ROC AUC, are kept), in whichever direction the training dates
    show, and it makes calibration comparable with the model's. Rows without a score before
    their as_of get the label rate of the training rows without one (the overall rate when
    every training row had one): they are kept, so the comparison is on the model's own rows.
    """

    model: LogisticRegression
    centre: float
    spread: float
    unscored_rate: float

    def predict_proba(self, score: np.ndarray) -> np.ndarray:
        score = np.asarray(score, dtype="float64")
        known = ~np.isnan(score)
        p = np.full(len(score), self.unscored_rate)
        if known.any():
            z = ((score[known] - self.centre) / self.spread).reshape(-1, 1)
            p[known] = self.model.predict_proba(z)[:, 1]
        return p


def fit_customer_score(score: np.ndarray, y: np.ndarray, seed: int = 0) -> CustomerScore | None:
    """The map fitted on training rows; None when fewer than two distinct scores or one class
    among the scored rows (nothing to map)."""
    score, y = np.asarray(score, dtype="float64"), np.asarray(y, dtype="int64")
    known = ~np.isnan(score)
    if len(np.unique(score[known])) < 2 or len(np.unique(y[known])) < 2:
        return None
    centre, spread = float(score[known].mean()), float(score[known].std())
    model = LogisticRegression(C=1e6, max_iter=1000, random_state=seed)  # ~unregularised
    model.fit(((score[known] - centre) / spread).reshape(-1, 1), y[known])
    rate = float(y[~known].mean()) if (~known).any() else float(y.mean())
    return CustomerScore(model, centre, spread, rate)


@dataclass
class ReferenceScores:
    """The test-row probabilities of the health scorecard and, when the export has one, of
    the customer's own score; ``notes`` adds facts to their reported metrics (coverage)."""

    scores: dict[str, np.ndarray]
    notes: dict[str, dict[str, float]]
    scorecard: Scorecard


def reference_columns(task: str) -> list[str]:
    """The training frame's columns `reference_scores` reads: the keys (the customer score is
    looked up by account and as_of), the label and the task's measures. Handing it only these
    lets the caller free the rest of the training frame first (~1 GB at 100,000 accounts x 17
    dates); the scores are the same (tested)."""
    from features.catalogue import ACCOUNT_ID, AS_OF

    return [ACCOUNT_ID, AS_OF, "label", *(m.column for m in task_measures(task))]


def reference_scores(task: str, parts: dict[str, pd.DataFrame], tables, seed: int
                     ) -> ReferenceScores:
    """The fitted scorecard (``health_score``) and the customer's score (``customer_score``,
    only when ``tables`` has scores), both fitted on ``parts["train"]`` and scored on
    ``parts["test"]``: the same rows the model is judged on. ``parts["train"]`` needs only
    the `reference_columns` (a measure it lacks is skipped, as an all-null one)."""
    from features.families.customer_score import latest_scores

    train, test = parts["train"], parts["test"]
    y_train = train["label"].to_numpy()
    card = fit_scorecard(train, y_train, task_measures(task), seed)
    scores = {"health_score": card.predict_proba(test)}
    notes: dict[str, dict[str, float]] = {}
    if tables is not None and tables.has("health_scores"):
        test_score = latest_scores(tables, test).to_numpy()
        mapped = fit_customer_score(latest_scores(tables, train).to_numpy(), y_train, seed)
        if mapped is not None:
            scores["customer_score"] = mapped.predict_proba(test_score)
            notes["customer_score"] = {"coverage": float((~np.isnan(test_score)).mean())}
    return ReferenceScores(scores, notes, card)
