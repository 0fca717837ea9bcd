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
from simulator.columns import (
    NULL,
    US_PER_DAY,
    Columns,
    day_of,
    month_start,
    office_time,
    sigmoid,
)
from simulator.population import (
    N_PRODUCTS,
    ROLE,
    Population,
    State,
    set_term,
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


def step(world: World, k: int) -> Month:
    """Advance the world by month ``k`` of the window; return who was served when."""
    pop, state, rng = world.pop, world.state, world.rng
    n, month_index = pop.n, world.m0 + k
    first_day, next_first_day = int(month_start(month_index)), int(month_start(month_index + 1))
    if k > 0:
        shocks = P.RANDOM_SHOCK_SIZE * (rng.random(n) < P.RANDOM_SHOCK_RATE)
        noise = P.HEALTH_SIGMA * rng.standard_normal(n)
        state.health = (
            state.mu + P.HEALTH_PHI * (state.health - state.mu) + noise - state.shock - shocks
        )
        state.shock[:] = 0.0
    new = (state.status == 0) & (pop.first_month == month_index)
    _activate(world, np.flatnonzero(new))
    active = state.status == 1
    lo = np.where(new, pop.first_start, first_day)
    hi = np.full(n, next_first_day, dtype=np.int64)
    seg, health = pop.seg, state.health
    disc_effect = P.DISCOUNT_CHURN_SLOPE * (state.disc / 100 - P.DISCOUNT_REFERENCE)

    # Fixed terms: a customer leaving with notice decides ahead of the end (the notice is
    # stamped 30-90 days before it); the others decide in the end month, on the health then.
    deciding = active & pop.annual & ~state.decided & (state.decision_m <= month_index)
    p_renewal_churn = sigmoid(
        P.RENEWAL_CHURN_LOGIT[seg] - P.CHURN_HEALTH_SLOPE * health + disc_effect
    )
    _decide_renewals(world, np.flatnonzero(deciding), p_renewal_churn, month_index)
    ends = active & pop.annual & (state.term_end_m == month_index)
    p_late = silent_churn_probability(p_renewal_churn)
    noticed = ends & state.will_churn
    churn_prob = np.where(ends, np.where(noticed, 1.0, p_late), 0.0)
    renewal_churn_prob = np.where(ends, state.pending_p + (1 - state.pending_p) * p_late, 0.0)
    decided_month = np.where(ends, month_start(state.decision_m), NULL)
    end_day = day_of(state.term_end_m, pop.dom)
    renewal_day = np.where(ends, end_day, NULL)
    churned = noticed | (ends & ~noticed & (rng.random(n) < p_late))
    renewing = ends & ~churned
    hi[churned] = end_day[churned]

    # Open-ended terms can stop any month after the first.
    monthly = active & ~pop.annual & ~new
    p_monthly = sigmoid(P.MONTHLY_CHURN_LOGIT[seg] - P.CHURN_HEALTH_SLOPE * health + disc_effect)
    churn_prob = np.where(monthly, p_monthly, churn_prob)
    stops = monthly & (rng.random(n) < p_monthly)
    _cancel_monthly(world, np.flatnonzero(stops), first_day, next_first_day, hi)
    churned |= stops

    # Expansion: one draw per month among those who stay; its marginal probability and that of
    # an ARR growth of at least UPSELL_REFERENCE_GROWTH or a new product are recorded.
    p_expand = sigmoid(P.EXPANSION_LOGIT[seg] + P.EXPANSION_HEALTH_SLOPE * health)
    leaving = pop.annual & state.decided & state.will_churn
    can_expand = active & ~new & ~leaving
    stay = np.where(can_expand, 1 - churn_prob, 0.0)
    expansion_prob = p_expand * stay
    expanded = can_expand & ~churned & (rng.random(n) < p_expand)
    p_contract = sigmoid(P.CONTRACTION_LOGIT - P.CONTRACTION_HEALTH_SLOPE * health)
    p_contract_renewal = sigmoid(P.RENEWAL_CONTRACTION_LOGIT - P.CONTRACTION_HEALTH_SLOPE * health)
    upsell_prob = stay * _upsell_probability(world, ends, p_expand, p_contract_renewal)
    contracts = rng.random(n)
    _renew(world, np.flatnonzero(renewing), expanded, contracts < p_contract_renewal)
    mid = expanded & ~renewing
    _expand_annual(world, np.flatnonzero(mid & pop.annual), first_day, next_first_day)
    _expand_monthly(world, np.flatnonzero(mid & ~pop.annual), first_day, next_first_day)
    shrinking = active & ~new & ~pop.annual & ~churned & ~expanded & (contracts < p_contract)
    _contract_monthly(world, np.flatnonzero(shrinking), first_day, next_first_day)

    idx = np.flatnonzero(active)
    world.truth.append(
        {
            "account": idx,
            "month": np.full(len(idx), first_day, dtype=np.int64),
            "health": health[idx],
            "churn_prob": churn_prob[idx],
            "expansion_prob": expansion_prob[idx],
            "churned": churned[idx],
            "expanded": expanded[idx],
            "renewal_day": renewal_day[idx],
            "decided_month": decided_month[idx],
            "renewal_churn_prob": renewal_churn_prob[idx],
            "upsell_prob": upsell_prob[idx],
        }
    )
    month = Month(
        m=month_index, start=first_day, end=next_first_day, idx=idx, lo=lo, hi=hi, new=new
    )
    _contact_events(world, month)
    state.status[churned] = 2
    state.cur_row[churned] = -1
    return month


def _activate(world: World, accounts: np.ndarray) -> None:
    """New logos sign their first term(s) on their first-start day."""
    pop, state = world.pop, world.state
    state.status[accounts] = 1
    a_idx, prod = np.nonzero(state.held[accounts])
    account = accounts[a_idx]
    annual = pop.annual[account]
    end = np.where(
        annual, day_of(pop.first_month[account] + pop.term_len[account], pop.dom[account]), NULL
    )
    seats, start = state.seats[account, prod], pop.first_start[account]
    state.cur_row[account, prod] = _add_rows(world, account, prod, seats, start, end)
    fixed = accounts[pop.annual[accounts]]
    set_term(pop, state, fixed, pop.first_month[fixed] + pop.term_len[fixed])


def _add_rows(
    world: World,
    account: np.ndarray,
    prod: np.ndarray,
    seats: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """Write subscription rows with the account's current plan and discount."""
    state, pop = world.state, world.pop
    annual = pop.annual[account]
    return world.subs.append(
        account=account,
        product=prod,
        plan=state.plan[account, prod],
        seats=seats,
        disc=state.disc[account],
        start=start,
        end=end,
        cancel=np.full(len(account), NULL),
        annual=annual,
        auto_renew=pop.auto_renew[account],
    )


def silent_churn_probability(p: np.ndarray) -> np.ndarray:
    """Chance of leaving without notice at the end, for a customer who gave none: with
    ``NOTICE_SHARE`` of churners giving notice, it keeps the churn rate at a renewal at ``p``."""
    share = P.NOTICE_SHARE
    return p * (1 - share) / (1 - share * p)


def _decide_renewals(
    world: World, accounts: np.ndarray, p_churn: np.ndarray, month_index: int
) -> None:
    """The early decision: leave and give notice (probability ``NOTICE_SHARE x p``) or not yet."""
    state, rng = world.state, world.rng
    state.decided[accounts] = True
    state.decision_m[accounts] = month_index
    state.pending_p[accounts] = P.NOTICE_SHARE * p_churn[accounts]
    state.will_churn[accounts] = rng.random(len(accounts)) < state.pending_p[accounts]
    lead = rng.integers(30, 91, len(accounts))
    gives_notice = state.will_churn[accounts]
    account = accounts[gives_notice]
    end_day = day_of(state.term_end_m[account], world.pop.dom[account])
    notice_us = (end_day - lead[gives_notice]) * US_PER_DAY + office_time(rng, len(account))
    world.notices.append((account, end_day, notice_us))


def _grid(lo: float, hi: float, k: int = 16) -> np.ndarray:
    """Midpoints of ``k`` equal bins of ``[lo, hi)``: quadrature of a uniform draw."""
    return lo + (hi - lo) * (np.arange(k) + 0.5) / k


def _upsell_probability(
    world: World, ends: np.ndarray, p_expand: np.ndarray, p_contract_renewal: np.ndarray
) -> np.ndarray:
    """Chance, for an account that stays, that this month lifts its ARR by at least
    ``UPSELL_REFERENCE_GROWTH`` or adds a product: the expansion draws below, integrated over
    their uniform sizes (seats added, product picked, discount renegotiated at a renewal)."""
    state = world.state
    held, seats, plan = state.held, state.seats * state.held, state.plan
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
        d = state.disc[r, None]
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
        out[r] = p_expand[r] * expand_share + (1 - p_expand[r]) * (1 - p_contract_renewal[r]) * flat
    return out


def _cancel_monthly(
    world: World, accounts: np.ndarray, first_day: int, next_first_day: int, hi: np.ndarray
) -> None:
    """Open-ended churn: every term of the account stops at one moment within the month."""
    day = first_day + np.floor(
        world.rng.random(len(accounts)) * (next_first_day - first_day)
    ).astype(np.int64)
    when = day * US_PER_DAY + office_time(world.rng, len(accounts))
    hi[accounts] = day
    rows = world.state.cur_row[accounts]
    held = rows >= 0
    world.subs["cancel"][rows[held]] = np.repeat(when, held.sum(axis=1))


def _upsell_product(rng: np.random.Generator, held: np.ndarray) -> np.ndarray:
    """The product getting more seats: mostly core, else another product held."""
    pri = np.where(held, rng.random(held.shape), -1.0)
    pri[:, 0] = np.where(rng.random(len(held)) < 0.7, 2.0, pri[:, 0])
    return pri.argmax(axis=1)


def _cross_product(rng: np.random.Generator, held: np.ndarray) -> np.ndarray:
    """A random product not yet held, -1 when all are."""
    pri = np.where(held, -1.0, rng.random(held.shape))
    return np.where(pri.max(axis=1) >= 0, pri.argmax(axis=1), -1)


def _split_expansion(
    world: World, accounts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split expanding accounts into (cross-sell accts, their new product, upsell accts)."""
    rng, state = world.rng, world.state
    new_prod = _cross_product(rng, state.held[accounts])
    cross = (rng.random(len(accounts)) < P.CROSS_SELL_SHARE) & (new_prod >= 0)
    return accounts[cross], new_prod[cross], accounts[~cross]


def _adopt(world: World, account: np.ndarray, prod: np.ndarray) -> np.ndarray:
    """Give accounts a new product: seats a share of core seats, plan at most the core plan."""
    state, rng = world.state, world.rng
    seats = np.maximum(1, np.round(state.seats[account, 0] * rng.uniform(0.3, 1.0, len(account))))
    state.held[account, prod] = True
    state.seats[account, prod] = seats.astype(np.int64)
    state.plan[account, prod] = np.minimum(state.plan[account, 0], rng.integers(0, 3, len(account)))
    return state.seats[account, prod]


def _more_seats(world: World, account: np.ndarray, prod: np.ndarray) -> np.ndarray:
    factor = world.rng.uniform(0.15, 0.5, len(account))
    return np.maximum(1, np.round(world.state.seats[account, prod] * factor)).astype(np.int64)


def _expand_annual(world: World, accounts: np.ndarray, first_day: int, next_first_day: int) -> None:
    """Mid-term on a fixed term: a co-terminous add-on row or a co-terminous new product."""
    state, pop, rng = world.state, world.pop, world.rng
    cross, new_prod, up = _split_expansion(world, accounts)
    start = first_day + np.floor(rng.random(len(accounts)) * (next_first_day - first_day)).astype(
        np.int64
    )
    end = day_of(state.term_end_m[accounts], pop.dom[accounts])
    is_cross = np.isin(accounts, cross)
    seats = _adopt(world, cross, new_prod)
    rows = _add_rows(world, cross, new_prod, seats, start[is_cross], end[is_cross])
    state.cur_row[cross, new_prod] = rows
    prod = _upsell_product(rng, state.held[up])
    extra = _more_seats(world, up, prod)
    _add_rows(world, up, prod, extra, start[~is_cross], end[~is_cross])
    state.seats[up, prod] += extra


def _change_open_term(
    world: World,
    account: np.ndarray,
    prod: np.ndarray,
    seats: np.ndarray,
    first_day: int,
    next_first_day: int,
) -> None:
    """Seat change on an open-ended term: cancel the row now, start a new one the same day."""
    state, rng = world.state, world.rng
    day = first_day + np.floor(rng.random(len(account)) * (next_first_day - first_day)).astype(
        np.int64
    )
    world.subs["cancel"][state.cur_row[account, prod]] = day * US_PER_DAY + office_time(
        rng, len(account)
    )
    state.seats[account, prod] = seats
    state.cur_row[account, prod] = _add_rows(
        world, account, prod, seats, day, np.full(len(account), NULL)
    )


def _expand_monthly(
    world: World, accounts: np.ndarray, first_day: int, next_first_day: int
) -> None:
    state, rng = world.state, world.rng
    cross, new_prod, up = _split_expansion(world, accounts)
    start = first_day + np.floor(rng.random(len(cross)) * (next_first_day - first_day)).astype(
        np.int64
    )
    seats = _adopt(world, cross, new_prod)
    state.cur_row[cross, new_prod] = _add_rows(
        world, cross, new_prod, seats, start, np.full(len(cross), NULL)
    )
    prod = _upsell_product(rng, state.held[up])
    _change_open_term(
        world,
        up,
        prod,
        state.seats[up, prod] + _more_seats(world, up, prod),
        first_day,
        next_first_day,
    )


def _contract_monthly(
    world: World, accounts: np.ndarray, first_day: int, next_first_day: int
) -> None:
    """Fewer seats on core, or a non-core product dropped (its term cancelled)."""
    state, rng = world.state, world.rng
    extra = state.held[accounts].copy()
    extra[:, 0] = False
    drop_prod = np.where(extra, rng.random(extra.shape), -1.0).argmax(axis=1)
    drop = extra.any(axis=1) & (rng.random(len(accounts)) < 0.35)
    account, prod = accounts[drop], drop_prod[drop]
    day = first_day + np.floor(rng.random(len(account)) * (next_first_day - first_day)).astype(
        np.int64
    )
    world.subs["cancel"][state.cur_row[account, prod]] = day * US_PER_DAY + office_time(
        rng, len(account)
    )
    state.held[account, prod] = False
    state.cur_row[account, prod] = -1
    shrink = accounts[~drop]
    shrink = shrink[state.seats[shrink, 0] > 1]
    seats = np.maximum(1, np.round(state.seats[shrink, 0] * rng.uniform(0.7, 0.9, len(shrink))))
    zeros = np.zeros(len(shrink), dtype=np.int64)
    _change_open_term(world, shrink, zeros, seats.astype(np.int64), first_day, next_first_day)


def _renew(world: World, accounts: np.ndarray, expanded: np.ndarray, contracts: np.ndarray) -> None:
    """Fixed terms that end and renew: a new row per product, with upgrades or downgrades."""
    state, pop, rng = world.state, world.pop, world.rng
    up = accounts[expanded[accounts]]
    cross, new_prod, grow = _split_expansion(world, up)
    _adopt(world, cross, new_prod)
    plan_up = grow[(rng.random(len(grow)) < 0.25) & (state.plan[grow, 0] < 2)]
    state.plan[plan_up, 0] += 1
    grow = np.setdiff1d(grow, plan_up)
    prod = _upsell_product(rng, state.held[grow])
    state.seats[grow, prod] += _more_seats(world, grow, prod)

    down = accounts[~expanded[accounts] & contracts[accounts]]
    extra = state.held[down].copy()
    extra[:, 0] = False
    drop = extra.any(axis=1) & (rng.random(len(down)) < 0.3)
    gone = np.where(extra[drop], rng.random((int(drop.sum()), N_PRODUCTS)), -1.0).argmax(axis=1)
    state.held[down[drop], gone] = False
    shrink = down[~drop]
    plan_down = shrink[(rng.random(len(shrink)) < 0.2) & (state.plan[shrink, 0] > 0)]
    state.plan[plan_down, 0] -= 1
    shrink = np.setdiff1d(shrink, plan_down)
    state.seats[shrink, 0] = np.maximum(
        1, np.round(state.seats[shrink, 0] * rng.uniform(0.7, 0.9, len(shrink)))
    ).astype(np.int64)
    state.disc[accounts] = (
        np.round(state.disc[accounts] * rng.uniform(0.75, 1.0, len(accounts)) * 2) / 2
    )

    state.cur_row[accounts] = -1
    a_idx, prod = np.nonzero(state.held[accounts])
    account = accounts[a_idx]
    start = day_of(state.term_end_m[account], pop.dom[account])
    new_end_m = state.term_end_m[account] + pop.term_len[account]
    end = day_of(new_end_m, pop.dom[account])
    state.cur_row[account, prod] = _add_rows(
        world, account, prod, state.seats[account, prod], start, end
    )
    set_term(pop, state, accounts, state.term_end_m[accounts] + pop.term_len[accounts])


def _contact_events(world: World, month: Month) -> None:
    """Champions and sponsors leave or arrive, detractors appear, users leave."""
    pop, state, rng, c = world.pop, world.state, world.rng, world.contacts
    n = pop.n
    lo, hi = month.lo, month.hi
    served = (state.status == 1) & ~month.new & (hi > lo)

    def day_in_span(accounts: np.ndarray) -> np.ndarray:
        return lo[accounts] + np.floor(rng.random(len(accounts)) * (hi - lo)[accounts]).astype(
            np.int64
        )

    departs = rng.random(n) < P.CHAMPION_DEPARTURE_RATE
    leaves = np.flatnonzero(served & (state.champion >= 0) & departs)
    c["end"][state.champion[leaves]] = day_in_span(leaves)
    state.champion[leaves] = -1
    state.shock[leaves] += P.CHAMPION_SHOCK
    hires = served & (state.champion < 0) & (rng.random(n) < P.CHAMPION_REPLACEMENT_RATE)
    hires[leaves] = False
    account = np.flatnonzero(hires)
    state.champion[account] = c.append(
        account=account,
        role=np.full(len(account), ROLE["champion"]),
        start=day_in_span(account),
        end=np.full(len(account), NULL),
    )

    gone = np.flatnonzero(
        served & (state.sponsor >= 0) & (rng.random(n) < P.SPONSOR_DEPARTURE_RATE)
    )
    c["end"][state.sponsor[gone]] = day_in_span(gone)
    state.sponsor[gone] = -1
    state.mu[gone] -= P.SPONSOR_LIFT
    gains = served & (state.sponsor < 0) & (rng.random(n) < P.SPONSOR_GAIN_RATE[pop.seg])
    gains[gone] = False
    account = np.flatnonzero(gains)
    state.sponsor[account] = c.append(
        account=account,
        role=np.full(len(account), ROLE["executive sponsor"]),
        start=day_in_span(account),
        end=np.full(len(account), NULL),
    )
    state.mu[account] += P.SPONSOR_LIFT

    p_detractor = sigmoid(P.DETRACTOR_LOGIT - P.DETRACTOR_HEALTH_SLOPE * state.health)
    account = np.flatnonzero(served & (rng.random(n) < p_detractor))
    c.append(
        account=account,
        role=np.full(len(account), ROLE["detractor"]),
        start=day_in_span(account),
        end=np.full(len(account), NULL),
    )

    cacct = c["account"]
    users = (c["role"] == ROLE["user"]) & (c["end"] == NULL) & served[cacct]
    users &= c["start"] < lo[cacct]
    leaving = np.flatnonzero(users & (rng.random(c.size) < P.USER_DEPARTURE_RATE))
    c["end"][leaving] = day_in_span(cacct[leaving])
