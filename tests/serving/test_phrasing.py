"""Plain-language reasons and money as the page, the API and the CSV show them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.phrasing import good_news, money_formatter, plain, reason_text, with_texts
from serving.settings import ServingSettings

TICKETS = "Support tickets opened in the last 90 days"


@pytest.mark.parametrize(("task", "direction", "expected"), [
    ("churn", "lowering", "engaged: opened 29 support tickets in the last 90 days"),
    ("churn", "raising", "friction: opened 29 support tickets in the last 90 days"),
    ("upsell", "raising", "engaged: opened 29 support tickets in the last 90 days"),
    ("cross-sell", "lowering", "friction: opened 29 support tickets in the last 90 days"),
])
def test_tickets_read_as_engagement_or_friction_by_what_they_do_to_the_account(
        task, direction, expected):
    assert reason_text("tickets_90d", TICKETS, 29, task, direction) == expected


def test_surprising_features_say_why_with_their_own_window_and_value():
    assert reason_text("tickets_7d", "Support tickets opened in the last 7 days", 3, "churn",
                       "raising") == "friction: opened 3 support tickets in the last 7 days"
    assert reason_text("urgent_tickets_90d", "High or urgent ...", 2, "churn", "lowering") == (
        "engaged: opened 2 urgent support tickets in the last 90 days")
    assert reason_text("days_to_renewal", "Days until the next fixed-term contract ends", 45,
                       "churn", "raising") == "renewal coming up: contract ends in 45 days"
    assert reason_text("days_since_last_event", "Days since the last product event", 120,
                       "churn", "raising") == "gone quiet: last product use 120 days ago"
    assert reason_text("discount_pct", "Average discount off list price", 33.5, "churn",
                       "lowering") == "committed on price: 33.5% discount off list price"
    assert reason_text("hours_to_resolve_90d", "Average hours to resolve", 12.78, "churn",
                       "raising") == ("slow support: tickets took 12.8 hours to resolve on "
                                      "average (last 90 days)")


def test_a_missing_renewal_date_reads_as_no_fixed_term():
    label = "Days until the next fixed-term contract ends"
    assert reason_text("days_to_renewal", label, None, "churn", "raising") == (
        "free to leave any month: no fixed-term contract")
    assert reason_text("days_to_renewal", label, None, "churn", "lowering") == (
        "no renewal decision ahead: no fixed-term contract")


def test_other_features_read_as_their_catalogue_description_and_value():
    assert reason_text("events_30d", "Product events in the last 30 days", 412, "churn",
                       "lowering") == "Product events in the last 30 days: 412"
    assert reason_text("seat_utilisation_30d", "Share of paid seats used", 0.2857, "upsell",
                       "raising") == "Share of paid seats used: 0.29"
    assert reason_text("tickets_90d", TICKETS, None, "churn", "raising") == f"{TICKETS}: no value"
    assert reason_text("candidate_product", "The product offered", "analytics", "cross-sell",
                       "raising") == "The product offered: analytics"


def test_good_news_is_lower_churn_or_higher_upsell():
    assert [good_news(t, d) for t, d in (("churn", "lowering"), ("churn", "raising"),
                                         ("upsell", "raising"), ("upsell", "lowering"))] == [
        True, False, True, False]


def test_with_texts_adds_the_sentence_to_each_reason_dict():
    reasons = {"raising": [{"feature": "tickets_90d", "description": TICKETS, "value": 29,
                            "contribution": 0.4}],
               "lowering": [{"feature": "events_30d", "description": "Product events",
                             "value": 412, "contribution": -0.2}]}
    assert [r["text"] for found in with_texts(reasons, "churn").values() for r in found] == [
        "friction: opened 29 support tickets in the last 90 days", "Product events: 412"]


def test_plain_values():
    assert [plain(v) for v in (12.779722, 0.2857, 21220.5, True, 7, None, float("nan"))] == [
        "12.8", "0.29", "21,220", "yes", "7", "no value", "–"]


@pytest.mark.parametrize(("currency", "locale", "value", "expected"), [
    ("USD", "en_US", 1234567.4, "$1,234,567"),
    ("USD", "en_US", -5.6, "-$6"),
    ("EUR", "de_DE", 1234567.6, "1.234.568\xa0€"),
    ("GBP", "en_GB", 9400429.0, "£9,400,429"),
])
def test_money_is_whole_amounts_in_the_configured_currency(currency, locale, value, expected):
    assert money_formatter(currency, locale)(value) == expected


def test_currency_settings_are_checked_with_a_clear_message():
    assert ServingSettings(currency="eur", currency_locale="de_DE").currency == "EUR"
    with pytest.raises(ValidationError, match=r"currency: unknown currency code 'XXY'"):
        ServingSettings(currency="XXY")
    with pytest.raises(ValidationError, match=r"currency_locale: unknown locale 'zz_QQ'"):
        ServingSettings(currency_locale="zz_QQ")
