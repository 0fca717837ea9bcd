"""The monthly simulation: latent health, contract events (renewal, churn, expansion) and truth.

Each month, in this order: health moves (AR(1) around a long-run level, plus shocks such as a
champion leaving last month); new logos sign their first term; fixed terms reach their early
renewal decision ``DECISION_LEAD_DAYS`` before the end (leave and give notice, stamped 30-90
days ahead, with probability ``NOTICE_SHARE x p``; otherwise undecided); fixed terms that end
churn (all with notice, the rest on the health of the end month, so the churn rate at a renewal
stays ``p``) or renew; open-ended terms may churn; the rest may expand (add-on seats or a new
product) or, on monthly terms, contract. The truth of the month records the probabilities
given the state when the month begins, what happened, and what an oracle needs to condition on
the state at any moment: a fixed term's end day, when its early decision was drawn and the
churn probability before it, and the chance of an upsell as the labels define it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator import params as P
from simulator.population import (
    N_PRODUCTS,
    ROLE,
    Population,
    State,
    set_term,
)
from simulator.columns import (
    NULL,
    US_PER_DAY,
    Columns,
    day_of,
    month_start,
    office_time,
    sigmoid,
)


@dataclass
class World:
    """Everything the simulation reads and writes."""

    pop: Population
    state: State
    rng: np.random.Generator
    m0: int  # first month of the window (months since 1970-01)
    subs: Columns
    contacts: Columns
    notices: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    truth: list[dict[str, np.ndarray]] = field(default_factory=list)


@dataclass
class Month:
    """The customers of one month and the days ``[lo, hi)`` each was served in it."""

    m: int  # month since 1970-01
    start: int  # its first day
    end: int  # the first day of the next month
    idx: np.ndarray  # customer accounts this month
    lo: np.ndarray  # (n,) first day of service in the month
    hi: np.ndarray  # (n,) day after the last day of service in the month
    new: np.ndarray  # (n,) signed the first term this month


def step(w: World, k: int) -> Month:
    """Advance the world by month ``k`` of the window; return who was served when."""
    pop, st, rng = w.pop, w.state, w.rng
    n, am = pop.n, w.m0 + k
    ms, me = int(month_start(am)), int(month_start(am + 1))
    if k > 0:
        shocks = P.RANDOM_SHOCK_SIZE * (rng.random(n) < P.RANDOM_SHOCK_RATE)
        noise = P.HEALTH_SIGMA * rng.standard_normal(n)
        st.h = st.mu + P.HEALTH_PHI * (st.h - st.mu) + noise - st.shock - shocks
        st.shock[:] = 0.0
    new = (st.status == 0) & (pop.first_month == am)
    _activate(w, np.flatnonzero(new))
    active = st.status == 1
    lo = np.where(new, pop.first_start, ms)
    hi = np.full(n, me, dtype=np.int64)
    seg, h = pop.seg, st.h
    disc_effect = P.DISCOUNT_CHURN_SLOPE * (st.disc / 100 - P.DISCOUNT_REFERENCE)

    # Fixed terms: a customer leaving with notice decides ahead of the end (the notice is
    # stamped 30-90 days before it); the others decide in the end month, on the health then.
    deciding = active & pop.annual & ~st.decided & (st.decision_m <= am)
    p_renewal_churn = sigmoid(P.RENEWAL_CHURN_LOGIT[seg] - P.CHURN_HEALTH_SLOPE * h + disc_effect)
    _decide_renewals(w, np.flatnonzero(deciding), p_renewal_churn, am)
    ends = active & pop.annual & (st.term_end_m == am)
    p_late = silent_churn_probability(p_renewal_churn)
    noticed = ends & st.will_churn
    churn_prob = np.where(ends, np.where(noticed, 1.0, p_late), 0.0)
    renewal_churn_prob = np.where(ends, st.pending_p + (1 - st.pending_p) * p_late, 0.0)
    decided_month = np.where(ends, month_start(st.decision_m), NULL)
    end_day = day_of(st.term_end_m, pop.dom)
    renewal_day = np.where(ends, end_day, NULL)
    churned = noticed | (ends & ~noticed & (rng.random(n) < p_late))
    renewing = ends & ~churned
    hi[churned] = end_day[churned]

    # Open-ended terms can stop any month after the first.
    monthly = active & ~pop.annual & ~new
    p_monthly = sigmoid(P.MONTHLY_CHURN_LOGIT[seg] - P.CHURN_HEALTH_SLOPE * h + disc_effect)
    churn_prob = np.where(monthly, p_monthly, churn_prob)
    stops = monthly & (rng.random(n) < p_monthly)
    _cancel_monthly(w, np.flatnonzero(stops), ms, me, hi)
    churned |= stops

    # Expansion: one draw per month among those who stay; its marginal probability and that of
    # an ARR growth of at least UPSELL_REFERENCE_GROWTH or a new product are recorded.
    p_expand = sigmoid(P.EXPANSION_LOGIT[seg] + P.EXPANSION_HEALTH_SLOPE * h)
    leaving = pop.annual & st.decided & st.will_churn
    can_expand = active & ~new & ~leaving
    stay = np.where(can_expand, 1 - churn_prob, 0.0)
    expansion_prob = p_expand * stay
    expanded = can_expand & ~churned & (rng.random(n) < p_expand)
    p_contract = sigmoid(P.CONTRACTION_LOGIT - P.CONTRACTION_HEALTH_SLOPE * h)
    p_contract_renewal = sigmoid(P.RENEWAL_CONTRACTION_LOGIT - P.CONTRACTION_HEALTH_SLOPE * h)
    upsell_prob = stay * _upsell_probability(w, ends, p_expand, p_contract_renewal)
    contracts = rng.random(n)
    _renew(w, np.flatnonzero(renewing), expanded, contracts < p_contract_renewal)
    mid = expanded & ~renewing
    _expand_annual(w, np.flatnonzero(mid & pop.annual), ms, me)
    _expand_monthly(w, np.flatnonzero(mid & ~pop.annual), ms, me)
    shrinking = active & ~new & ~pop.annual & ~churned & ~expanded & (contracts < p_contract)
    _contract_monthly(w, np.flatnonzero(shrinking), ms, me)

    idx = np.flatnonzero(active)
    w.truth.append(
        {
            "acct": idx, "month": np.full(len(idx), ms, dtype=np.int64), "health": h[idx],
            "churn_prob": churn_prob[idx], "expansion_prob": expansion_prob[idx],
            "churned": churned[idx], "expanded": expanded[idx],
            "renewal_day": renewal_day[idx], "decided_month": decided_month[idx],
            "renewal_churn_prob": renewal_churn_prob[idx], "upsell_prob": upsell_prob[idx],
        }
    )
    month = Month(m=am, start=ms, end=me, idx=idx, lo=lo, hi=hi, new=new)
    _contact_events(w, month)
    st.status[churned] = 2
    st.cur_row[churned] = -1
    return month


def _activate(w: World, accts: np.ndarray) -> None:
    """New logos sign their first term(s) on their first-start day."""
    pop, st = w.pop, w.state
    st.status[accts] = 1
    a_idx, prod = np.nonzero(st.held[accts])
    acct = accts[a_idx]
    annual = pop.annual[acct]
    end = np.where(
        annual, day_of(pop.first_month[acct] + pop.term_len[acct], pop.dom[acct]), NULL
    )
    seats, start = st.seats[acct, prod], pop.first_start[acct]
    st.cur_row[acct, prod] = _add_rows(w, acct, prod, seats, start, end)
    fixed = accts[pop.annual[accts]]
    set_term(pop, st, fixed, pop.first_month[fixed] + pop.term_len[fixed])


def _add_rows(
    w: World, acct: np.ndarray, prod: np.ndarray, seats: np.ndarray, start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """Write subscription rows with the account's current plan and discount."""
    st, pop = w.state, w.pop
    annual = pop.annual[acct]
    return w.subs.append(
        acct=acct, product=prod, plan=st.plan[acct, prod], seats=seats, disc=st.disc[acct],
        start=start, end=end, cancel=np.full(len(acct), NULL), annual=annual,
        auto_renew=pop.auto_renew[acct],
    )


def silent_churn_probability(p: np.ndarray) -> np.ndarray:
    """Chance of leaving without notice at the end, for a customer who gave none: with
    ``NOTICE_SHARE`` of churners giving notice, it keeps the churn rate at a renewal at ``p``."""
    share = P.NOTICE_SHARE
    return p * (1 - share) / (1 - share * p)


def _decide_renewals(w: World, accts: np.ndarray, p_churn: np.ndarray, am: int) -> None:
    """The early decision: leave and give notice (probability ``NOTICE_SHARE x p``) or not yet."""
    st, rng = w.state, w.rng
    st.decided[accts] = True
    st.decision_m[accts] = am
    st.pending_p[accts] = P.NOTICE_SHARE * p_churn[accts]
    st.will_churn[accts] = rng.random(len(accts)) < st.pending_p[accts]
    lead = rng.integers(30, 91, len(accts))
    gives_notice = st.will_churn[accts]
    acct = accts[gives_notice]
    end_day = day_of(st.term_end_m[acct], w.pop.dom[acct])
    notice_us = (end_day - lead[gives_notice]) * US_PER_DAY + office_time(rng, len(acct))
    w.notices.append((acct, end_day, notice_us))


def _grid(lo: float, hi: float, k: int = 16) -> np.ndarray:
    """Midpoints of ``k`` equal bins of ``[lo, hi)``: quadrature of a uniform draw."""
    return lo + (hi - lo) * (np.arange(k) + 0.5) / k


def _upsell_probability(
    w: World, ends: np.ndarray, p_expand: np.ndarray, p_contract_renewal: np.ndarray
) -> np.ndarray:
    """Chance, for an account that stays, that this month lifts its ARR by at least
    ``UPSELL_REFERENCE_GROWTH`` or adds a product: the expansion draws below, integrated over
    their uniform sizes (seats added, product picked, discount renegotiated at a renewal)."""
    st = w.state
    held, seats, plan = st.held, st.seats * st.held, st.plan
    unit = P.PRICES[np.arange(N_PRODUCTS)[None, :], plan]  # list price per seat
    gross = np.maximum((seats * unit).sum(axis=1), 1e-9)
    n_held = np.maximum(held.sum(axis=1), 1)
    weight = held * (0.3 / n_held)[:, None]
    weight[:, 0] += 0.7  # _upsell_product: core 70 %, else a held product at random
    cross = P.CROSS_SELL_SHARE * (~held).any(axis=1)
    target = 1 + P.UPSELL_REFERENCE_GROWTH - 1e-9
    extra = np.maximum(1, np.round(seats[:, :, None] * _grid(0.15, 0.5)))  # _more_seats
    ratio = 1 + extra * unit[:, :, None] / gross[:, None, None]  # (n, products, sizes)
    seats_share = (weight * (ratio >= target).mean(axis=2)).sum(axis=1)
    share = cross + (1 - cross) * seats_share
    out = p_expand * share
    r = np.flatnonzero(ends)
    if len(r):
        d = st.disc[r, None]
        new_d = np.round(d * _grid(0.75, 1.0)[None, :] * 2) / 2  # as in _renew
        price = (1 - new_d / 100) / (1 - d / 100)  # (renewals, discount draws)
        flat = (price >= target).mean(axis=1)
        p0 = plan[r, 0]
        up = 0.25 * (p0 < 2)
        step_up = P.PRICES[0, np.minimum(p0 + 1, 2)] - P.PRICES[0, p0]
        plan_ratio = 1 + seats[r, 0] * step_up / gross[r]
        plan_share = (plan_ratio[:, None] * price >= target).mean(axis=1)
        grown = ratio[r][:, :, :, None] * price[:, None, None, :] >= target
        grow_share = (weight[r] * grown.mean(axis=(2, 3))).sum(axis=1)
        expand_share = cross[r] + (1 - cross[r]) * (up * plan_share + (1 - up) * grow_share)
        out[r] = (
            p_expand[r] * expand_share + (1 - p_expand[r]) * (1 - p_contract_renewal[r]) * flat
        )
    return out


def _cancel_monthly(w: World, accts: np.ndarray, ms: int, me: int, hi: np.ndarray) -> None:
    """Open-ended churn: every term of the account stops at one moment within the month."""
    day = ms + np.floor(w.rng.random(len(accts)) * (me - ms)).astype(np.int64)
    when = day * US_PER_DAY + office_time(w.rng, len(accts))
    hi[accts] = day
    rows = w.state.cur_row[accts]
    held = rows >= 0
    w.subs["cancel"][rows[held]] = np.repeat(when, held.sum(axis=1))


def _upsell_product(rng: np.random.Generator, held: np.ndarray) -> np.ndarray:
    """The product getting more seats: mostly core, else another product held."""
    pri = np.where(held, rng.random(held.shape), -1.0)
    pri[:, 0] = np.where(rng.random(len(held)) < 0.7, 2.0, pri[:, 0])
    return pri.argmax(axis=1)


def _cross_product(rng: np.random.Generator, held: np.ndarray) -> np.ndarray:
    """A random product not yet held, -1 when all are."""
    pri = np.where(held, -1.0, rng.random(held.shape))
    return np.where(pri.max(axis=1) >= 0, pri.argmax(axis=1), -1)


def _split_expansion(w: World, accts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split expanding accounts into (cross-sell accts, their new product, upsell accts)."""
    rng, st = w.rng, w.state
    new_prod = _cross_product(rng, st.held[accts])
    cross = (rng.random(len(accts)) < P.CROSS_SELL_SHARE) & (new_prod >= 0)
    return accts[cross], new_prod[cross], accts[~cross]


def _adopt(w: World, acct: np.ndarray, prod: np.ndarray) -> np.ndarray:
    """Give accounts a new product: seats a share of core seats, plan at most the core plan."""
    st, rng = w.state, w.rng
    seats = np.maximum(1, np.round(st.seats[acct, 0] * rng.uniform(0.3, 1.0, len(acct))))
    st.held[acct, prod] = True
    st.seats[acct, prod] = seats.astype(np.int64)
    st.plan[acct, prod] = np.minimum(st.plan[acct, 0], rng.integers(0, 3, len(acct)))
    return st.seats[acct, prod]


def _more_seats(w: World, acct: np.ndarray, prod: np.ndarray) -> np.ndarray:
    factor = w.rng.uniform(0.15, 0.5, len(acct))
    return np.maximum(1, np.round(w.state.seats[acct, prod] * factor)).astype(np.int64)


def _expand_annual(w: World, accts: np.ndarray, ms: int, me: int) -> None:
    """Mid-term on a fixed term: a co-terminous add-on row or a co-terminous new product."""
    st, pop, rng = w.state, w.pop, w.rng
    cross, new_prod, up = _split_expansion(w, accts)
    start = ms + np.floor(rng.random(len(accts)) * (me - ms)).astype(np.int64)
    end = day_of(st.term_end_m[accts], pop.dom[accts])
    is_cross = np.isin(accts, cross)
    seats = _adopt(w, cross, new_prod)
    rows = _add_rows(w, cross, new_prod, seats, start[is_cross], end[is_cross])
    st.cur_row[cross, new_prod] = rows
    prod = _upsell_product(rng, st.held[up])
    extra = _more_seats(w, up, prod)
    _add_rows(w, up, prod, extra, start[~is_cross], end[~is_cross])
    st.seats[up, prod] += extra


def _change_open_term(w: World, acct: np.ndarray, prod: np.ndarray, seats: np.ndarray,
                      ms: int, me: int) -> None:
    """Seat change on an open-ended term: cancel the row now, start a new one the same day."""
    st, rng = w.state, w.rng
    day = ms + np.floor(rng.random(len(acct)) * (me - ms)).astype(np.int64)
    w.subs["cancel"][st.cur_row[acct, prod]] = day * US_PER_DAY + office_time(rng, len(acct))
    st.seats[acct, prod] = seats
    st.cur_row[acct, prod] = _add_rows(w, acct, prod, seats, day, np.full(len(acct), NULL))


def _expand_monthly(w: World, accts: np.ndarray, ms: int, me: int) -> None:
    st, rng = w.state, w.rng
    cross, new_prod, up = _split_expansion(w, accts)
    start = ms + np.floor(rng.random(len(cross)) * (me - ms)).astype(np.int64)
    seats = _adopt(w, cross, new_prod)
    st.cur_row[cross, new_prod] = _add_rows(
        w, cross, new_prod, seats, start, np.full(len(cross), NULL)
    )
    prod = _upsell_product(rng, st.held[up])
    _change_open_term(w, up, prod, st.seats[up, prod] + _more_seats(w, up, prod), ms, me)


def _contract_monthly(w: World, accts: np.ndarray, ms: int, me: int) -> None:
    """Fewer seats on core, or a non-core product dropped (its term cancelled)."""
    st, rng = w.state, w.rng
    extra = st.held[accts].copy()
    extra[:, 0] = False
    drop_prod = np.where(extra, rng.random(extra.shape), -1.0).argmax(axis=1)
    drop = extra.any(axis=1) & (rng.random(len(accts)) < 0.35)
    acct, prod = accts[drop], drop_prod[drop]
    day = ms + np.floor(rng.random(len(acct)) * (me - ms)).astype(np.int64)
    w.subs["cancel"][st.cur_row[acct, prod]] = day * US_PER_DAY + office_time(rng, len(acct))
    st.held[acct, prod] = False
    st.cur_row[acct, prod] = -1
    shrink = accts[~drop]
    shrink = shrink[st.seats[shrink, 0] > 1]
    seats = np.maximum(1, np.round(st.seats[shrink, 0] * rng.uniform(0.7, 0.9, len(shrink))))
    zeros = np.zeros(len(shrink), dtype=np.int64)
    _change_open_term(w, shrink, zeros, seats.astype(np.int64), ms, me)


def _renew(w: World, accts: np.ndarray, expanded: np.ndarray, contracts: np.ndarray) -> None:
    """Fixed terms that end and renew: a new row per product, with upgrades or downgrades."""
    st, pop, rng = w.state, w.pop, w.rng
    up = accts[expanded[accts]]
    cross, new_prod, grow = _split_expansion(w, up)
    _adopt(w, cross, new_prod)
    plan_up = grow[(rng.random(len(grow)) < 0.25) & (st.plan[grow, 0] < 2)]
    st.plan[plan_up, 0] += 1
    grow = np.setdiff1d(grow, plan_up)
    prod = _upsell_product(rng, st.held[grow])
    st.seats[grow, prod] += _more_seats(w, grow, prod)

    down = accts[~expanded[accts] & contracts[accts]]
    extra = st.held[down].copy()
    extra[:, 0] = False
    drop = extra.any(axis=1) & (rng.random(len(down)) < 0.3)
    gone = np.where(extra[drop], rng.random((int(drop.sum()), N_PRODUCTS)), -1.0).argmax(axis=1)
    st.held[down[drop], gone] = False
    shrink = down[~drop]
    plan_down = shrink[(rng.random(len(shrink)) < 0.2) & (st.plan[shrink, 0] > 0)]
    st.plan[plan_down, 0] -= 1
    shrink = np.setdiff1d(shrink, plan_down)
    st.seats[shrink, 0] = np.maximum(
        1, np.round(st.seats[shrink, 0] * rng.uniform(0.7, 0.9, len(shrink)))
    ).astype(np.int64)
    st.disc[accts] = np.round(st.disc[accts] * rng.uniform(0.75, 1.0, len(accts)) * 2) / 2

    st.cur_row[accts] = -1
    a_idx, prod = np.nonzero(st.held[accts])
    acct = accts[a_idx]
    start = day_of(st.term_end_m[acct], pop.dom[acct])
    new_end_m = st.term_end_m[acct] + pop.term_len[acct]
    end = day_of(new_end_m, pop.dom[acct])
    st.cur_row[acct, prod] = _add_rows(w, acct, prod, st.seats[acct, prod], start, end)
    set_term(pop, st, accts, st.term_end_m[accts] + pop.term_len[accts])


def _contact_events(w: World, month: Month) -> None:
    """Champions and sponsors leave or arrive, detractors appear, users leave."""
    pop, st, rng, c = w.pop, w.state, w.rng, w.contacts
    n = pop.n
    lo, hi = month.lo, month.hi
    served = (st.status == 1) & ~month.new & (hi > lo)

    def day_in_span(accts: np.ndarray) -> np.ndarray:
        return lo[accts] + np.floor(rng.random(len(accts)) * (hi - lo)[accts]).astype(np.int64)

    departs = rng.random(n) < P.CHAMPION_DEPARTURE_RATE
    leaves = np.flatnonzero(served & (st.champion >= 0) & departs)
    c["end"][st.champion[leaves]] = day_in_span(leaves)
    st.champion[leaves] = -1
    st.shock[leaves] += P.CHAMPION_SHOCK
    hires = served & (st.champion < 0) & (rng.random(n) < P.CHAMPION_REPLACEMENT_RATE)
    hires[leaves] = False
    acct = np.flatnonzero(hires)
    st.champion[acct] = c.append(
        acct=acct, role=np.full(len(acct), ROLE["champion"]), start=day_in_span(acct),
        end=np.full(len(acct), NULL),
    )

    gone = np.flatnonzero(served & (st.sponsor >= 0) & (rng.random(n) < P.SPONSOR_DEPARTURE_RATE))
    c["end"][st.sponsor[gone]] = day_in_span(gone)
    st.sponsor[gone] = -1
    st.mu[gone] -= P.SPONSOR_LIFT
    gains = served & (st.sponsor < 0) & (rng.random(n) < P.SPONSOR_GAIN_RATE[pop.seg])
    gains[gone] = False
    acct = np.flatnonzero(gains)
    st.sponsor[acct] = c.append(
        acct=acct, role=np.full(len(acct), ROLE["executive sponsor"]), start=day_in_span(acct),
        end=np.full(len(acct), NULL),
    )
    st.mu[acct] += P.SPONSOR_LIFT

    p_detractor = sigmoid(P.DETRACTOR_LOGIT - P.DETRACTOR_HEALTH_SLOPE * st.h)
    acct = np.flatnonzero(served & (rng.random(n) < p_detractor))
    c.append(
        acct=acct, role=np.full(len(acct), ROLE["detractor"]), start=day_in_span(acct),
        end=np.full(len(acct), NULL),
    )

    cacct = c["acct"]
    users = (c["role"] == ROLE["user"]) & (c["end"] == NULL) & served[cacct]
    users &= c["start"] < lo[cacct]
    leaving = np.flatnonzero(users & (rng.random(c.size) < P.USER_DEPARTURE_RATE))
    c["end"][leaving] = day_in_span(cacct[leaving])
