"""Reasons and money as an account manager reads them: one sentence per reason that says why,
and money figures in the configured currency.

A reason's sentence is the feature catalogue's description with the account's value
("Product events in the last 30 days: 412"), except for the features whose effect surprises
people: there the sentence names the reading the model made of it, which depends on whether
the reason is good or bad news for the account (29 support tickets lowering churn risk read as
"engaged: opened 29 support tickets in the last 90 days", raising it as "friction: ...").
The page, the API's reasons (`text`) and the CSV use the same sentences.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, is_currency

CHURN = "churn"


def plain(value: object) -> str:
    """A feature value as a person reads it: 12.779722 -> "12.8", 0.2857 -> "0.29",
    21220.5 -> "21,220", True -> "yes"; the API keeps full precision, the page need not."""
    kind = type(value)  # exact types first: this runs for every reason of a 10,000-row answer
    if kind is float:
        if value != value or value in (math.inf, -math.inf):
            return "–"
        size = abs(value)
        if size >= 100 or value.is_integer():
            return f"{value:,.0f}"
        return f"{value:.1f}" if size >= 1 else f"{value:.2f}"
    if kind is int:
        return f"{value:,}"
    if value is None:
        return "no value"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return plain(value.item())
    return str(value)


def good_news(task: str, direction: str) -> bool:
    """Whether a reason speaks for the account: lowering churn, raising upsell or cross-sell."""
    return (direction == "lowering") == (task == CHURN)


@dataclass(frozen=True)
class Phrase:
    """How one surprising feature reads: the why when it is good news for the account, the why
    when it is bad news, and the fact (``{v}``: the value, ``{w}``: the window in days)."""

    good: str
    bad: str
    fact: str
    missing: Phrase | None = None  # how it reads when the account has no value


#: Features whose effect surprises people, by name pattern (windows are configurable).
PHRASES: tuple[tuple[re.Pattern[str], Phrase], ...] = tuple(
    (re.compile(pattern), phrase) for pattern, phrase in (
        (r"tickets_(?P<w>\d+)d", Phrase(
            "engaged", "friction", "opened {v} support tickets in the last {w} days")),
        (r"urgent_tickets_(?P<w>\d+)d", Phrase(
            "engaged", "friction", "opened {v} urgent support tickets in the last {w} days")),
        (r"escalations_(?P<w>\d+)d", Phrase(
            "heard and helped", "friction", "{v} escalated tickets in the last {w} days")),
        (r"open_tickets", Phrase("engaged", "waiting on support", "{v} support tickets open")),
        (r"hours_to_resolve_(?P<w>\d+)d", Phrase(
            "support keeps up", "slow support",
            "tickets took {v} hours to resolve on average (last {w} days)")),
        (r"days_to_renewal", Phrase(
            "renewal not yet due", "renewal coming up", "contract ends in {v} days",
            missing=Phrase("no renewal decision ahead", "free to leave any month",
                           "no fixed-term contract"))),
        (r"days_since_last_event", Phrase(
            "recently active", "gone quiet", "last product use {v} days ago")),
        (r"discount_pct", Phrase(
            "committed on price", "price-sensitive", "{v}% discount off list price")),
        (r"nps_detractors_(?P<w>\d+)d", Phrase(
            "feedback given", "unhappy voices",
            "{v} detractor NPS answers (0-6) in the last {w} days")),
        (r"detractor_contacts", Phrase(
            "critics known and managed", "unhappy voices", "{v} contacts known as detractors")),
        (r"mrr_change_(?P<w>\d+)d", Phrase(
            "revenue holding", "revenue slipping", "MRR changed by {v} in the last {w} days")),
    ))


@dataclass(frozen=True)
class Wording:
    """A feature's sentences with its window filled in: ``{v}`` is left for the value."""

    good: str
    bad: str
    missing_good: str | None
    missing_bad: str | None


@lru_cache(maxsize=4096)
def wording(feature: str) -> Wording | None:
    """The feature's entry of `PHRASES`, None for the features read as description: value."""
    for pattern, phrase in PHRASES:
        found = pattern.fullmatch(feature)
        if found:
            fact = phrase.fact.format(v="{v}", **found.groupdict())
            gone = phrase.missing
            return Wording(f"{phrase.good}: {fact}", f"{phrase.bad}: {fact}",
                           gone and f"{gone.good}: {gone.fact}",
                           gone and f"{gone.bad}: {gone.fact}")
    return None


def reason_text(feature: str, description: str, value: object, task: str,
                direction: str) -> str:
    """The sentence of one reason of `task`'s model pointing `direction` (raising/lowering)."""
    words = wording(feature)
    if words is None:
        return f"{description}: {plain(value)}"
    good = good_news(task, direction)
    if value is None:
        sentence = words.missing_good if good else words.missing_bad
        return sentence or f"{description}: no value"
    return (words.good if good else words.bad).format(v=plain(value))


def with_texts(reasons: dict[str, list[dict]], task: str) -> dict[str, list[dict]]:
    """A reason set's dicts (`serving.reasons.as_dicts`) with each reason's `text` added."""
    for direction, found in reasons.items():
        for r in found:
            r["text"] = reason_text(r["feature"], r["description"], r.get("value"), task,
                                    direction)
    return reasons


# --- money -------------------------------------------------------------------------------------
class CurrencyError(ValueError):
    """A currency code or locale Babel does not know."""


def money_formatter(currency: str, locale: str) -> Callable[[float], str]:
    """Whole amounts in `currency` as `locale` writes them ("$1,234,567", "1.234.567 €"):
    the page's money figures are estimates, cents would be noise."""
    try:
        where = Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise CurrencyError(f"currency_locale: unknown locale {locale!r} (e.g. en_US, de_DE)"
                            ) from exc
    if not is_currency(currency):
        raise CurrencyError(f"currency: unknown currency code {currency!r} (an ISO 4217 code "
                            "such as USD, EUR, GBP)")
    pattern = re.sub(r"\.0+", "", where.currency_formats["standard"].pattern)

    def money(value: float) -> str:
        return format_currency(round(value), currency, format=pattern, locale=where,
                               currency_digits=False)

    return money
