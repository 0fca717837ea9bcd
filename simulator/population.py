"""The generator's accounts: who they are, how they start, and their history before the window.

``build_population`` draws every per-account attribute that does not change (segment, tenure,
billing, hierarchy, owner, ...); ``start_state`` turns it into the mutable simulation state as of
the window start, writing the contract terms that existing customers signed before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import CONTACT_ROLES, SEGMENTS
from simulator import params as P
from simulator.columns import (
    NULL,
    US_PER_DAY,
    Columns,
    day_of,
    group_ranks,
    ids,
    month_of,
    month_start,
    office_time,
    take_strings,
)

ROLE = {name: i for i, name in enumerate(CONTACT_ROLES)}
N_PRODUCTS = len(P.PRODUCTS)

_NAME_HEADS = (
    "Blue", "North", "Silver", "Red", "Green", "Iron", "Bright", "Clear", "Stone", "Summit",
    "Pine", "Oak", "River", "Harbor", "Cedar", "Falcon", "Atlas", "Nova", "Polar", "Sun",
    "Granite", "Maple", "Crystal", "Eagle", "Copper", "Lake", "Prime", "Vertex", "Orbit", "Delta",
)
_NAME_TAILS = (
    "ridge", "wind", "field", "stone", "bridge", "point", "gate", "view", "works", "line",
    "path", "star", "wave", "peak", "crest", "forge", "haven", "mark", "scope", "vale",
)
_NAME_KINDS = (
    " Systems", " Labs", " Group", " Logistics", " Health", " Capital", " Foods", " Energy",
    " Software", " Retail", " Partners", " Industries", " Media", " Networks", " Solutions",
    " Manufacturing", " Analytics", " Holdings", " Services", " Technologies",
)
_FIRST = (
    "Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Robin", "Avery", "Riley",
    "Chris", "Dana", "Kim", "Lee", "Pat", "Quinn", "Reese", "Sasha", "Toni", "Drew",
)
_LAST = (
    "Meyer", "Garcia", "Chen", "Novak", "Okafor", "Smith", "Rossi", "Kowalski", "Silva", "Nakamura",
    "Dubois", "Hansen", "Patel", "Murphy", "Larsen", "Costa", "Fischer", "Ivanova", "Brown", "Ali",
)


@dataclass
class Population:
    """Per-account attributes fixed for the whole simulation (arrays of length ``n``)."""

    n: int
    seg: np.ndarray  # index into SEGMENTS
    existing: np.ndarray  # customer before the window start
    created_us: np.ndarray
    first_month: np.ndarray  # month of the first term
    first_start: np.ndarray  # day of the first term
    dom: np.ndarray  # day of month (1-28) on which terms start
    annual: np.ndarray
    term_len: np.ndarray  # months of a fixed term; 0 for open-ended monthly terms
    auto_renew: np.ndarray
    disc: np.ndarray  # discount percent
    held0: np.ndarray  # (n, products) products held at the start / first term
    seats0: np.ndarray  # (n, products)
    plan0: np.ndarray  # (n, products)
    mu: np.ndarray  # long-run health before sponsor effects
    sponsor0: np.ndarray
    util_bias: np.ndarray
    breadth: np.ndarray
    survey_phase: np.ndarray
    qbr_phase: np.ndarray
    parent: np.ndarray  # index of the parent account, -1 for none
    industry: np.ndarray
    region: np.ndarray
    owner: np.ndarray
    owner_names: tuple[str, ...]
    names: pa.Array


@dataclass
class State:
    """What changes month by month."""

    status: np.ndarray  # 0 not yet customer, 1 customer, 2 churned
    health: np.ndarray
    mu: np.ndarray
    shock: np.ndarray  # health lost at the next monthly update
    held: np.ndarray  # (n, products)
    seats: np.ndarray  # (n, products), total seats in force
    plan: np.ndarray  # (n, products)
    disc: np.ndarray
    cur_row: np.ndarray  # (n, products) subscription row of the current term, -1 for none
    term_end_m: np.ndarray  # month in which the current fixed term ends
    decision_m: np.ndarray  # month of its early decision (leave with notice or not yet)
    decided: np.ndarray
    will_churn: np.ndarray
    pending_p: np.ndarray  # probability of leaving with notice, used at the early decision
    champion: np.ndarray  # contact row of the current champion, -1 for none
    sponsor: np.ndarray  # contact row of the current executive sponsor, -1 for none


def new_subscription_rows(capacity: int) -> Columns:
    return Columns(
        {
            "account": np.int64, "product": np.int64, "plan": np.int64, "seats": np.int64,
            "disc": np.float64, "start": np.int64, "end": np.int64, "cancel": np.int64,
            "annual": np.bool_, "auto_renew": np.bool_,
        },
        capacity,
    )


def new_contact_rows(capacity: int) -> Columns:
    dtypes = {"account": np.int64, "role": np.int64, "start": np.int64, "end": np.int64}
    return Columns(dtypes, capacity)


def choose_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1)."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def build_population(n: int, rng: np.random.Generator, m0: int, months: int) -> Population:
    """Draw ``n`` accounts: existing customers with tenure, and new logos within the window."""
    seg = rng.choice(3, n, p=P.SEGMENT_SHARES)
    existing = rng.random(n) < P.EXISTING_SHARE
    tenure = 1 + np.floor(rng.gamma(*P.TENURE_GAMMA, n)).astype(np.int64)
    tenure = np.minimum(tenure, P.MAX_TENURE_MONTHS)
    weights = P.NEW_LOGO_MONTH_WEIGHTS[(m0 + np.arange(months)) % 12]
    new_month = m0 + rng.choice(months, n, p=weights / weights.sum())
    first_month = np.where(existing, m0 - tenure, new_month)
    dom = np.where(rng.random(n) < P.FIRST_OF_MONTH_SHARE, 1, rng.integers(2, 29, n))
    first_start = day_of(first_month, dom)
    lead = rng.integers(0, P.CREATED_LEAD_DAYS + 1, n)
    created_us = (first_start - lead) * US_PER_DAY + office_time(rng, n)
    # Account ids follow creation order.
    order = np.argsort(created_us, kind="stable")
    seg, existing, first_month, dom = seg[order], existing[order], first_month[order], dom[order]
    first_start, created_us = first_start[order], created_us[order]

    annual = rng.random(n) < P.ANNUAL_SHARE[seg]
    multi = rng.random(n) < P.MULTI_YEAR_SHARE[seg]
    term_len = np.where(annual, np.where(multi, 24, 12), 0)
    auto_renew = ~annual | (rng.random(n) < P.AUTO_RENEW_SHARE)
    disc_u = rng.uniform(P.DISCOUNT_RANGE[seg, 0], P.DISCOUNT_RANGE[seg, 1])
    disc = np.where(rng.random(n) < P.NO_DISCOUNT_SHARE[seg], 0.0, np.round(disc_u * 2) / 2)

    core_seats = np.maximum(
        1, np.round(rng.lognormal(np.log(P.SEATS_MEDIAN[seg]), P.SEATS_SIGMA[seg]))
    ).astype(np.int64)
    core_plan = choose_rows(rng, P.PLAN_PROBS[seg])
    adoption = np.where(existing[:, None], P.ADOPTION_EXISTING[seg], P.ADOPTION_NEW[seg])
    held0 = rng.random((n, N_PRODUCTS)) < adoption
    held0[:, 0] = True
    seats0 = np.maximum(1, np.round(core_seats[:, None] * rng.uniform(0.3, 1.0, (n, N_PRODUCTS))))
    seats0 = seats0.astype(np.int64)
    seats0[:, 0] = core_seats
    plan0 = np.minimum(core_plan[:, None], rng.integers(0, 3, (n, N_PRODUCTS)))
    plan0[:, 0] = core_plan

    sponsor0 = rng.random(n) < P.SPONSOR_SHARE[seg]
    mu = rng.normal(0.0, P.HEALTH_MU_SD, n) - P.SPONSOR_LIFT * P.SPONSOR_SHARE[seg]
    industry = rng.choice(len(P.INDUSTRIES), n, p=P.INDUSTRY_WEIGHTS / P.INDUSTRY_WEIGHTS.sum())
    region = rng.choice(len(P.REGIONS), n, p=P.REGION_WEIGHTS)
    parent = _hierarchy(rng, seg)
    has_parent = parent >= 0
    industry[has_parent] = industry[parent[has_parent]]
    owner, owner_names = _owners(rng, seg)
    names = _names(rng, n, parent, region)
    return Population(
        n=n, seg=seg, existing=existing, created_us=created_us, first_month=first_month,
        first_start=first_start, dom=dom, annual=annual, term_len=term_len,
        auto_renew=auto_renew, disc=disc, held0=held0, seats0=seats0, plan0=plan0, mu=mu,
        sponsor0=sponsor0, util_bias=rng.normal(0.0, 0.3, n), breadth=rng.normal(0.0, 0.45, n),
        survey_phase=rng.integers(0, 3, n), qbr_phase=rng.integers(0, 3, n), parent=parent,
        industry=industry, region=region, owner=owner, owner_names=owner_names, names=names,
    )


def _hierarchy(rng: np.random.Generator, seg: np.ndarray) -> np.ndarray:
    """Parents are a pool of enterprise groups; subsidiaries are drawn from everyone else."""
    n = len(seg)
    pool = np.flatnonzero((seg == 2) & (rng.random(n) < P.PARENT_POOL_SHARE))
    parent = np.full(n, -1, dtype=np.int64)
    if len(pool) == 0:
        return parent
    others = np.ones(n, dtype=bool)
    others[pool] = False
    share = min(1.0, P.CHILD_SHARE * n / max(1, int(others.sum())))
    child = others & (rng.random(n) < share)
    parent[child] = pool[rng.integers(0, len(pool), int(child.sum()))]
    return parent


def _owners(rng: np.random.Generator, seg: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Segment-specific account managers, about one per ``ACCOUNTS_PER_OWNER`` accounts."""
    counts = [max(1, round(int((seg == s).sum()) / P.ACCOUNTS_PER_OWNER)) for s in range(3)]
    offsets = np.cumsum([0] + counts[:-1])
    owner = np.asarray(offsets)[seg] + np.floor(rng.random(len(seg)) * np.asarray(counts)[seg])
    pairs = len(_FIRST) * len(_LAST)
    names = tuple(
        f"{_FIRST[j % len(_FIRST)]} {_LAST[(j // len(_FIRST)) % len(_LAST)]}"
        + (f" {j // pairs + 1}" if j >= pairs else "")
        for j in range(sum(counts))
    )
    return owner.astype(np.int64), names


def _names(rng: np.random.Generator, n: int, parent: np.ndarray, region: np.ndarray) -> pa.Array:
    """Company names; a subsidiary is named after its group and region."""
    head = take_strings(_NAME_HEADS, rng.integers(0, len(_NAME_HEADS), n))
    tail = take_strings(_NAME_TAILS, rng.integers(0, len(_NAME_TAILS), n))
    kind = take_strings(_NAME_KINDS, rng.integers(0, len(_NAME_KINDS), n))
    own = pc.binary_join_element_wise(head, tail, kind, "")
    has_parent = parent >= 0
    group = own.take(pa.array(np.where(has_parent, parent, np.arange(n))))
    sub = pc.binary_join_element_wise(group, " (", take_strings(P.REGIONS, region), ")", "")
    return pc.if_else(pa.array(has_parent), sub, own)


def accounts_table(pop: Population) -> dict[str, pa.Array]:
    """The ``accounts`` table columns."""
    account_id = ids("A", np.arange(pop.n), 7)
    has_parent = pop.parent >= 0
    parent_id = account_id.take(pa.array(np.where(has_parent, pop.parent, 0)))
    parent_id = pc.if_else(pa.array(has_parent), parent_id, pa.nulls(pop.n, pa.string()))
    return {
        "account_id": account_id,
        "name": pop.names,
        "parent_account_id": parent_id,
        "segment": take_strings(SEGMENTS, pop.seg),
        "industry": take_strings(P.INDUSTRIES, pop.industry),
        "region": take_strings(P.REGIONS, pop.region),
        "owner": take_strings(pop.owner_names, pop.owner),
        "created_at": pa.array(pop.created_us, pa.int64()).cast(pa.timestamp("us")),
        "external_id": ids("CRM", np.arange(pop.n), 7),  # the receiving CRM's record id
    }


def start_state(
    pop: Population, rng: np.random.Generator, m0: int, subs: Columns, contacts: Columns
) -> State:
    """State at the window start; writes existing customers' past terms and all first contacts."""
    n = pop.n
    state = State(
        status=np.where(pop.existing, 1, 0).astype(np.int8),
        health=np.zeros(n),
        mu=pop.mu + P.SPONSOR_LIFT * pop.sponsor0,
        shock=np.zeros(n),
        held=pop.held0.copy(),
        seats=pop.seats0.copy(),
        plan=pop.plan0.copy(),
        disc=pop.disc.copy(),
        cur_row=np.full((n, N_PRODUCTS), -1, dtype=np.int64),
        term_end_m=np.zeros(n, dtype=np.int64),
        decision_m=np.zeros(n, dtype=np.int64),
        decided=np.zeros(n, dtype=bool),
        will_churn=np.zeros(n, dtype=bool),
        pending_p=np.zeros(n),
        champion=np.full(n, -1, dtype=np.int64),
        sponsor=np.full(n, -1, dtype=np.int64),
    )
    stationary_sd = P.HEALTH_SIGMA / np.sqrt(1 - P.HEALTH_PHI**2)
    state.health = state.mu + rng.normal(0.0, stationary_sd, n)
    _history_annual(pop, state, rng, m0, subs)
    _history_monthly(pop, state, rng, m0, subs)
    _first_contacts(pop, state, rng, m0, contacts)
    return state


def set_term(pop: Population, state: State, accounts: np.ndarray, end_month: np.ndarray) -> None:
    """Record the current fixed term's end and the month of its early renewal decision."""
    state.term_end_m[accounts] = end_month
    end_day = day_of(end_month, pop.dom[accounts])
    state.decision_m[accounts] = month_of(end_day - P.DECISION_LEAD_DAYS)
    state.decided[accounts] = False
    state.will_churn[accounts] = False


def _history_annual(
    pop: Population, state: State, rng: np.random.Generator, m0: int, subs: Columns
) -> None:
    accounts = np.flatnonzero(pop.existing & pop.annual)
    length = pop.term_len[accounts]
    k_cur = (m0 - 1 - pop.first_month[accounts]) // length  # current term: the last begun before m0
    a_idx, prod = np.nonzero(state.held[accounts])
    account = accounts[a_idx]
    k_from = np.where(prod == 0, 0, np.floor(rng.random(len(account)) * (k_cur[a_idx] + 1)))
    n_terms = (k_cur[a_idx] - k_from + 1).astype(np.int64)
    account, prod = np.repeat(account, n_terms), np.repeat(prod, n_terms)
    k = np.repeat(k_from.astype(np.int64), n_terms) + group_ranks(n_terms)
    k_last = np.repeat(k_cur[a_idx], n_terms)
    length = pop.term_len[account]
    growth = P.HISTORY_SEAT_GROWTH ** (k_last - k)
    seats = np.maximum(1, np.round(state.seats[account, prod] / growth))
    rows = subs.append(
        account=account,
        product=prod,
        plan=state.plan[account, prod],
        seats=seats.astype(np.int64),
        disc=state.disc[account],
        start=day_of(pop.first_month[account] + k * length, pop.dom[account]),
        end=day_of(pop.first_month[account] + (k + 1) * length, pop.dom[account]),
        cancel=np.full(len(account), NULL),
        annual=np.ones(len(account), dtype=bool),
        auto_renew=pop.auto_renew[account],
    )
    current = k == k_last
    state.cur_row[account[current], prod[current]] = rows[current]
    set_term(pop, state, accounts, pop.first_month[accounts] + (k_cur + 1) * pop.term_len[accounts])


def _history_monthly(
    pop: Population, state: State, rng: np.random.Generator, m0: int, subs: Columns
) -> None:
    accounts = np.flatnonzero(pop.existing & ~pop.annual)
    a_idx, prod = np.nonzero(state.held[accounts])
    account = accounts[a_idx]
    first = pop.first_start[account]
    later = first + np.floor(rng.random(len(account)) * (month_start(m0) - first)).astype(np.int64)
    rows = subs.append(
        account=account,
        product=prod,
        plan=state.plan[account, prod],
        seats=state.seats[account, prod],
        disc=state.disc[account],
        start=np.where(prod == 0, first, later),
        end=np.full(len(account), NULL),
        cancel=np.full(len(account), NULL),
        annual=np.zeros(len(account), dtype=bool),
        auto_renew=np.ones(len(account), dtype=bool),
    )
    state.cur_row[account, prod] = rows


def _first_contacts(
    pop: Population, state: State, rng: np.random.Generator, m0: int, contacts: Columns
) -> None:
    """Champion, economic buyer, sponsor and users known when the relationship began."""
    n, seg = pop.n, pop.seg
    window_start = month_start(m0)
    lead = rng.integers(0, 45, n)
    has_champion = rng.random(n) < P.CHAMPION_SHARE
    # Some long-standing customers replaced their champion before the window.
    tenure_days = window_start - pop.first_start
    replaced = has_champion & pop.existing & (tenure_days > 365) & (rng.random(n) < 0.4)
    new_start = pop.first_start + np.floor(rng.random(n) * np.maximum(tenure_days, 1)).astype(
        np.int64
    )
    champion_start = np.where(replaced, new_start, pop.first_start - lead)
    former = np.flatnonzero(replaced)
    contacts.append(
        account=former,
        role=np.full(len(former), ROLE["champion"]),
        start=pop.first_start[former] - lead[former],
        end=champion_start[former],
    )
    champ = np.flatnonzero(has_champion)
    rows = contacts.append(
        account=champ,
        role=np.full(len(champ), ROLE["champion"]),
        start=champion_start[champ],
        end=np.full(len(champ), NULL),
    )
    state.champion[champ] = rows
    buyer = np.flatnonzero(rng.random(n) < P.ECONOMIC_BUYER_SHARE[seg])
    contacts.append(
        account=buyer,
        role=np.full(len(buyer), ROLE["economic buyer"]),
        start=pop.first_start[buyer] - rng.integers(0, 60, len(buyer)),
        end=np.full(len(buyer), NULL),
    )
    sponsor = np.flatnonzero(pop.sponsor0)
    rows = contacts.append(
        account=sponsor,
        role=np.full(len(sponsor), ROLE["executive sponsor"]),
        start=pop.first_start[sponsor] - rng.integers(0, 60, len(sponsor)),
        end=np.full(len(sponsor), NULL),
    )
    state.sponsor[sponsor] = rows
    n_users = rng.poisson(P.USERS_PER_ACCOUNT[seg])
    users = np.repeat(np.arange(n), n_users)
    contacts.append(
        account=users,
        role=np.full(len(users), ROLE["user"]),
        start=pop.first_start[users] - rng.integers(0, 30, len(users)),
        end=np.full(len(users), NULL),
    )
