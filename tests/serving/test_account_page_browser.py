"""The account view and the "biggest movers this week" list in a real browser (chromium driven
by Playwright, as `test_page_browser`).

The app (auth on) serves a book with three runs in its history: 2025-04-01, 2025-05-01 and
2025-05-08, the last a copy of 2025-05-01 with three accounts' features moved on purpose
(`week_book.MOVES`). The movers list and the account view are checked against the history and
the change sets computed here. Screenshots: ``test-artifacts/page-movers.png`` and
``test-artifacts/page-account.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from features.store import FeatureStore
from serving.batch import score_duckdb
from serving.history import ScoreHistory, history_dir
from serving.keys import KeyStore
from serving.phrasing import reason_text
from tests.serving.test_page_browser import (  # noqa: F401  (fixtures)
    ARTEFACTS,
    Live,
    browser,
    chromium,
    expect,
    go,
    serving,
    sign_in,
)
from tests.serving.week_book import AFTER, BEFORE, MOVES, build_week, copy_snapshot, settings_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MONTH_EARLIER = date(2025, 4, 1)
MOVER_ROWS = "#movers tbody tr[data-account-id]"


@pytest.fixture(scope="module")
def week(served_data, tmp_path_factory):
    book = build_week(served_data, tmp_path_factory.mktemp("account-page"))
    copy_snapshot(FeatureStore(served_data / "features"),
                  FeatureStore(book.settings.features_dir), MONTH_EARLIER, MONTH_EARLIER)
    score_duckdb(book.settings, MONTH_EARLIER, out=str(history_dir(book.data_dir)))
    return book


@pytest.fixture(scope="module")
def live(chromium, week, served_data, tmp_path_factory) -> Iterator[Live]:  # noqa: F811

    from serving.app import create_app

    keys = tmp_path_factory.mktemp("account-page-keys") / "keys.json"
    key = KeyStore(keys).create("account-manager", "read")
    settings = settings_for(week.data_dir, served_data, api_keys_path=keys)
    settings = settings.model_copy(update={"auth_enabled": True})
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        with serving(create_app(settings), key) as live:
            yield live


@pytest.fixture()
def page(browser, live):  # noqa: F811
    context = browser.new_context(base_url=live.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    sign_in(page, live.key)
    yield page
    context.close()


def movers_expected(week, owner: str | None = None) -> list[str]:
    """Accounts whose churn probability moved, by |change x ARR|, risers first."""
    history = ScoreHistory(history_dir(week.data_dir))
    now = history.read(AFTER).set_index("account_id")
    then = history.read(BEFORE).set_index("account_id")
    w = ((now["churn_probability"] - then["churn_probability"]) * now["arr"]).dropna()
    w = w[w != 0]
    if owner is not None:
        w = w[now.loc[w.index, "owner"] == owner]
    return sorted(w.index, key=lambda a: (w[a] < 0, -abs(w[a]), a))


def test_movers_list_ranks_the_weeks_changes_and_filters_by_owner(page, live, week):
    go(page, page.get_by_role("link", name="Biggest movers this week"))
    rows = page.locator(MOVER_ROWS)
    expected = movers_expected(week)
    assert sorted(expected) == sorted(MOVES)  # nothing else moved
    expect(rows).to_have_count(len(expected))
    assert [r.get_attribute("data-account-id") for r in rows.all()] == expected
    quiet = page.locator(f"{MOVER_ROWS}[data-account-id=A0000001]")
    description = live.generation.scorer.descriptions["days_since_last_event"]
    old = week.before_values["A0000001"]
    expect(quiet.locator("li").first).to_have_text(f"{description}: {old:,.0f} -> 180")
    expect(page.locator("#movers-total")).to_have_text(str(len(expected)))
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "page-movers.png"), full_page=True)

    owner = quiet.locator(".col-owner").inner_text()
    page.get_by_label("Owner").select_option(owner)
    go(page, page.get_by_role("button", name="Filter"))
    assert [r.get_attribute("data-account-id") for r in page.locator(MOVER_ROWS).all()] == \
        movers_expected(week, owner)


def test_account_view_shows_history_reasons_what_changed_and_the_play(page, live, week):
    go(page, page.get_by_role("link", name="Biggest movers this week"))
    go(page, page.locator(f"{MOVER_ROWS}[data-account-id=A0000001] .col-account a"))
    assert page.url.endswith("/accounts/A0000001")
    scorer = live.generation.scorer
    row = scorer.row_of["A0000001"]
    expect(page.locator("#account-name")).to_contain_text(scorer.cols["name"][row])
    expect(page.locator("#churn-now")).to_have_text(
        f"{round(float(scorer.cols['churn_probability'][row]), 6):.1%}")

    # the chart: one dot per recorded run and series, oldest to newest
    history = ScoreHistory(history_dir(week.data_dir)).account("A0000001")
    assert len(history) == 3
    for series in ("Churn", "Upsell"):
        dots = page.locator(f"svg.chart g[data-series={series}] circle")
        expect(dots).to_have_count(3)
        column = f"{series.lower()}_probability"
        titles = [d.text_content() for d in dots.all()]
        assert titles == [f"{series}: {p:.1%}" for p in history[column]]
    expect(page.locator("svg.chart")).to_be_visible()

    # what changed: the moved feature first, with its before and after values
    changed = page.locator("#changed-churn")
    expect(changed.locator("li").first).to_have_attribute("data-feature", "days_since_last_event")
    expect(changed.locator("li").first).to_contain_text(
        f": {week.before_values['A0000001']:,.0f} -> 180")
    before, after = history["churn_probability"].iloc[1], history["churn_probability"].iloc[2]
    expect(changed.locator(".change-line")).to_have_text(f"{before:.1%} → {after:.1%}")

    # the current reasons and the play
    reasons = scorer.reasons([row], ("churn",))[0]["churn"]
    shown = page.locator("#reasons-churn li")
    expect(shown).to_have_count(len(reasons["raising"]) + len(reasons["lowering"]))
    first = reasons["raising"][0]  # the list page's sentence for it
    expect(shown.first).to_contain_text(
        reason_text(first.feature, first.description, first.value, "churn", "raising"))
    expect(page.locator("#play .play")).to_have_text(scorer.cols["play"][row])
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "page-account.png"), full_page=True)


def test_the_list_links_each_account_to_its_view_and_an_unknown_one_is_a_404(page, live):
    first = page.locator("#opportunities tbody tr[data-account-id]").first
    account = first.get_attribute("data-account-id")
    go(page, first.locator(".col-account a"))
    assert page.url.endswith(f"/accounts/{account}")
    expect(page.locator("#history svg.chart")).to_be_visible()
    response = page.goto("/accounts/NOT-AN-ACCOUNT")
    assert response.status == 404
    expect(page.locator("#not-found")).to_contain_text("NOT-AN-ACCOUNT")
