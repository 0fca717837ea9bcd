"""What the latent health shows through: usage, support tickets, NPS answers, CRM activities.

Each function draws one month of one signal for the customers of that month, only on the days
each was served (``Month.lo`` / ``Month.hi``), and returns plain numpy columns (usage: an Arrow
table sorted by event time, ready to be one Parquet row group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import ACTIVITY_TYPES, CONTACT_ROLES
from simulator import params as P
from simulator.columns import (
    NULL,
    US_PER_DAY,
    US_PER_HOUR,
    group_ranks,
    office_time,
    sigmoid,
    take_strings,
    times_in_span,
)
from simulator.simulation import Month, World

USER_BLOCK = 400_000  # users per block of the (day x user) activity draw, to bound memory
ACTIVITY = {name: i for i, name in enumerate(ACTIVITY_TYPES)}
_TYPE = {name: i for i, name in enumerate(P.EVENT_TYPES)}


def served(month: Month) -> np.ndarray:
    """Customers of the month with at least one day of service in it."""
    idx = month.idx
    return idx[month.hi[idx] > month.lo[idx]]


def day_weights(month: Month) -> np.ndarray:
    """Relative activity of each day of the month: weekends, August and late December dip."""
    days = np.arange(month.start, month.end)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weights = np.where(weekday >= 5, P.WEEKEND_FACTOR, 1.0)
    calendar_month = month.m % 12 + 1
    if calendar_month == 8:
        weights = weights * P.AUGUST_FACTOR
    if calendar_month == 12:
        weights = np.where(np.arange(len(days)) >= 19, weights * P.LATE_DECEMBER_FACTOR, weights)
    return weights


@dataclass(frozen=True)
class UsageDensity:
    """How much denser than the default book usage is drawn: benchmarks at the volume of real
    books of daily usage (the default book is ``UsageDensity()``).

    ``activity`` multiplies each engaged user's chance of being active on a day (at most 1;
    x16 is a product used on about a third of working days); ``sessions`` is the mean number
    of sessions of an active user-day (1 + Poisson(sessions - 1)), each one row per event type
    used that day, at its own office-hours time (the default book stamps days at midnight).
    """

    activity: float = 1.0
    sessions: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.activity < math.inf:
            raise ValueError(f"usage activity must be a positive number, got {self.activity}")
        if not 1 <= self.sessions < math.inf:
            raise ValueError(f"usage sessions must be a number >= 1, got {self.sessions}")


def usage_table(world: World, month: Month, account_ids: pa.Array, schema: pa.Schema,
                density: UsageDensity | None = None, rng: np.random.Generator | None = None
                ) -> pa.Table:
    """One month of usage rows, one per (user, day, event type) (per session when
    ``density.sessions`` > 1), sorted by event time; ``rng`` (default: the world's) draws."""
    pop, state = world.pop, world.state
    rng = rng or world.rng
    density = density or UsageDensity()
    idx = served(month)
    health = state.health[idx]
    util = sigmoid(P.UTIL_LOGIT[pop.seg[idx]] + pop.util_bias[idx] + P.UTIL_HEALTH_SLOPE * health)
    engaged = rng.binomial(state.seats[idx, 0], util)
    user_account = np.repeat(np.arange(len(idx)), engaged)
    slot = group_ranks(engaged)
    base = P.DAY_ACTIVITY[pop.seg[idx]] * np.exp(P.DAY_HEALTH_SLOPE * health)
    p_user = base[user_account] * rng.lognormal(-0.125, 0.5, len(user_account))
    if density.activity != 1.0:
        p_user = np.minimum(1.0, p_user * density.activity)
    day, user = _active_days(
        rng, day_weights(month), p_user, month.lo[idx][user_account] - month.start,
        month.hi[idx][user_account] - month.start,
    )
    q = _type_probabilities(world, idx)
    uses = rng.random((len(day), len(P.EVENT_TYPES)), dtype=np.float32) < q[user_account[user]]
    uses[:, 0] = True
    time = (month.start + day) * US_PER_DAY
    if density.sessions != 1.0:  # a row of ``uses`` per session, in time order
        user_day, time = _sessions(rng, time, density.sessions)
        uses, user = uses[user_day], user[user_day]
    row, etype = np.nonzero(uses)  # rows stay in time order
    account, time, slot_row = user_account[user[row]], time[row], slot[user[row]]
    lam = P.TYPE_QUANTITY[etype] * np.exp(0.3 * health[account])
    account_id = account_ids.take(pa.array(idx[account]))
    slot_text = pa.array(slot_row).cast(pa.string())
    user_id = pc.binary_join_element_wise(account_id, "-u", slot_text, "")
    return pa.Table.from_arrays(
        [
            account_id,
            user_id,
            pa.array(time, pa.int64()).cast(pa.timestamp("us")),
            take_strings(P.EVENT_TYPES, etype),
            pa.array(1 + rng.poisson(lam), pa.int64()),
        ],
        schema=schema,
    )


def _sessions(rng: np.random.Generator, midnight: np.ndarray, mean: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """(user-day, time) of each session of the user-days starting at ``midnight`` (their
    index, and the session's office-hours time that day), sorted by time."""
    count = 1 + rng.poisson(mean - 1.0, len(midnight))
    user_day = np.repeat(np.arange(len(midnight)), count)
    time = midnight[user_day] + office_time(rng, len(user_day))
    order = np.argsort(time, kind="stable")
    return user_day[order], time[order]


def _active_days(
    rng: np.random.Generator, weights: np.ndarray, p_user: np.ndarray, lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(day, user) pairs of active user-days, in day order; blocks of users bound memory."""
    n_days = len(weights)
    day_col = np.arange(n_days)[:, None]
    days, users = [], []
    for first in range(0, len(p_user), USER_BLOCK):
        block = slice(first, first + USER_BLOCK)
        prob = (weights[:, None] * p_user[None, block]).astype(np.float32)
        mask = rng.random(prob.shape, dtype=np.float32) < prob
        mask &= (day_col >= lo[None, block]) & (day_col < hi[None, block])
        d, u = np.nonzero(mask)
        days.append(d)
        users.append(u + first)
    day, user = np.concatenate(days), np.concatenate(users)
    order = np.argsort(day, kind="stable")
    return day[order], user[order]


def _type_probabilities(world: World, idx: np.ndarray) -> np.ndarray:
    """(accounts, event types) chance of using each type on an active day: breadth follows
    health and the products held (no integration syncs without the integrations product)."""
    state, pop = world.state, world.pop
    logit = (
        P.TYPE_LOGIT[None, :]
        + pop.breadth[idx, None]
        + P.TYPE_HEALTH_SLOPE * state.health[idx, None]
    )
    held = state.held[idx]
    for name in ("view_report", "create_report", "export"):
        logit[:, _TYPE[name]] += 1.0 * held[:, 1]
    logit[:, _TYPE["api_call"]] += 1.5 * held[:, 2]
    logit[:, _TYPE["admin_action"]] += 0.3 * held[:, 2]
    logit[:, _TYPE["integration_sync"]] += 1.5 * held[:, 3]
    q = sigmoid(logit)
    q[:, _TYPE["integration_sync"]] *= held[:, 3]
    return q.astype(np.float32)


def tickets(world: World, month: Month) -> dict[str, np.ndarray]:
    """Support tickets: more, more urgent, more escalated and less satisfied when unhealthy."""
    pop, state, rng = world.pop, world.state, world.rng
    idx = served(month)
    seg, health = pop.seg[idx], state.health[idx]
    share = (month.hi[idx] - month.lo[idx]) / (month.end - month.start)
    size = (state.seats[idx, 0] / P.SEATS_MEDIAN[seg]) ** 0.3
    lam = P.TICKETS_PER_MONTH[seg] * size * np.exp(-P.TICKET_HEALTH_SLOPE * health) * share
    count = rng.poisson(lam)
    account = np.repeat(idx, count)
    health = state.health[account]
    opened = times_in_span(rng, month.lo[account], month.hi[account])
    priority = np.digitize(-health + rng.normal(0.0, 1.0, len(account)), [-0.3, 1.0, 2.0])
    escalated = rng.random(len(account)) < sigmoid(-3.2 + 0.8 * priority - 0.5 * health)
    hours = rng.lognormal(np.log(10.0) + 0.5 * priority + 1.0 * escalated, 1.0)
    closed = opened + (hours * US_PER_HOUR).astype(np.int64)
    score = np.round(3.9 + 0.6 * health - 0.6 * escalated + rng.normal(0.0, 0.8, len(account)))
    csat = np.where(rng.random(len(account)) < P.CSAT_SHARE, np.clip(score, 1, 5), np.nan)
    return {
        "account": account, "opened": opened, "closed": closed, "priority": priority,
        "escalated": escalated, "csat": csat,
    }


def nps(world: World, month: Month) -> dict[str, np.ndarray]:
    """Quarterly-ish surveys: contacts in their role that day may answer; score follows health."""
    pop, state, rng, c = world.pop, world.state, world.rng, world.contacts
    idx = served(month)
    due = ((month.m + pop.survey_phase[idx]) % 3 == 0) & (rng.random(len(idx)) < P.NPS_SURVEY_SHARE)
    surveyed = np.zeros(pop.n, dtype=bool)
    surveyed[idx[due]] = True
    survey_day = month.lo + np.floor(rng.random(pop.n) * (month.hi - month.lo)).astype(np.int64)
    contact_account = c["account"]
    sday = survey_day[contact_account]
    in_role = (c["start"] <= sday) & ((c["end"] == NULL) | (c["end"] > sday))
    answer_p = np.array([P.NPS_RESPONSE[r] for r in CONTACT_ROLES])[c["role"]]
    answers = np.flatnonzero(surveyed[contact_account] & in_role & (rng.random(c.size) < answer_p))
    account = contact_account[answers]
    shift = np.array([P.NPS_ROLE_SHIFT[r] for r in CONTACT_ROLES])[c["role"][answers]]
    noise = rng.normal(0.0, P.NPS_NOISE, len(answers))
    logit = P.NPS_BASE + state.health[account] + shift + noise
    score = np.round(10 * sigmoid(logit)).astype(np.int64)
    responded = times_in_span(rng, survey_day[account], month.hi[account])
    anonymous = rng.random(len(answers)) < P.NPS_ANONYMOUS_SHARE
    return {
        "account": account,
        "contact": np.where(anonymous, -1, answers),
        "responded": responded,
        "score": score,
    }


def activities(world: World, month: Month) -> dict[str, np.ndarray]:
    """QBRs (skipped more by unhealthy accounts), calls (more near a renewal), emails and
    onboarding sessions in the first months."""
    pop, state, rng = world.pop, world.state, world.rng
    idx = served(month)
    seg, health = pop.seg[idx], state.health[idx]
    share = (month.hi[idx] - month.lo[idx]) / (month.end - month.start)
    review_month = (month.m + pop.qbr_phase[idx]) % 3 == 0
    p_qbr = np.minimum(1.0, P.QBR_SHARE[seg] * sigmoid(1.0 + 0.8 * health) / sigmoid(1.0))
    qbr = (review_month & (rng.random(len(idx)) < p_qbr)).astype(np.int64)
    months_left = state.term_end_m[idx] - month.m
    near = pop.annual[idx] & (months_left >= 0) & (months_left <= 3)
    calls = rng.poisson(P.CALLS_PER_MONTH[seg] * share * (1 + P.RENEWAL_OUTREACH * near))
    emails = rng.poisson(P.EMAILS_PER_MONTH[seg] * share)
    onboarding_phase = (month.m - pop.first_month[idx]) < P.ONBOARDING_MONTHS
    onboarding = rng.poisson(P.ONBOARDING_PER_MONTH[seg] * share * onboarding_phase)
    counts = np.stack([qbr, calls, emails, onboarding], axis=1)
    kinds = np.array([ACTIVITY[k] for k in ("qbr", "call", "email", "onboarding session")])
    flat = counts.ravel()
    account = np.repeat(np.repeat(idx, 4), flat)
    kind = np.repeat(np.tile(kinds, len(idx)), flat)
    return {
        "account": account,
        "occurred": times_in_span(rng, month.lo[account], month.hi[account]),
        "type": kind,
    }
