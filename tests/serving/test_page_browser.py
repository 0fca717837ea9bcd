"""The account managers' page in a real browser: Debian's chromium driven by Playwright.

The real app (auth on, a read key in a throwaway keys file) runs under uvicorn on a loopback
port; chromium signs in, reads the ranked lists, filters, pages, downloads the CSV and signs
out. Expected rankings are recomputed here with pandas from the served scores, so the page is
checked against the data, not against itself. A full-page screenshot of the churn list is
saved to ``test-artifacts/page-churn.png`` for people to look at.

Without chromium or Playwright these tests skip, unless PROPENSITY_REQUIRE_ALL_TESTS=1 (CI),
where they fail.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from serving.auth import COOKIE_NAME
from serving.keys import KeyStore
from serving.phrasing import money_formatter, reason_text
from serving.settings import ServingSettings

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the `chromium` fixture (skip, or fail in CI)
    expect = sync_playwright = None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking"]
PAGE_SIZE = 25
VALUE = {"churn": "arr_at_risk", "upsell": "expected_expansion",
         "cross_sell": "expected_cross_sell_arr"}
PROBABILITY = {"churn": "churn_probability", "upsell": "upsell_probability",
               "cross_sell": "next_best_product_probability"}
ROWS = "#opportunities tbody tr[data-account-id]"
READ_ROWS = """rows => rows.map(r => {
  const text = sel => { const e = r.querySelector(sel); return e ? e.textContent.trim() : null; };
  const renewal = r.querySelector('.col-renewal time');
  return {id: r.dataset.accountId, rank: Number(text('.col-rank')),
          overall: Number(r.querySelector('.col-rank').dataset.overallRank),
          renewal: renewal ? renewal.getAttribute('datetime') : null,
          owner: text('.col-owner'),
          segment: text('.col-segment'), arr: text('.col-arr'), prob: text('.col-prob'),
          tier: text('.col-tier'), value: text('.col-value'), product: text('.col-product'),
          play: text('.col-play .play'),
          reasons: [...r.querySelectorAll('.col-reasons li')]
                     .map(li => li.textContent.replace(/\\s+/g, ' ').trim())};
})"""


def _unavailable(reason: str) -> None:
    if os.environ.get("PROPENSITY_REQUIRE_ALL_TESTS") == "1":
        pytest.fail(f"{reason}; PROPENSITY_REQUIRE_ALL_TESTS=1 requires the browser tests to run")
    pytest.skip(reason)


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium executable (Debian's package; PROPENSITY_CHROMIUM overrides the path)."""
    if sync_playwright is None:
        _unavailable("Playwright for Python is not installed (make install)")
    path = os.environ.get("PROPENSITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        _unavailable(f"chromium not found at {path} (apt-get install -y chromium)")
    return path


class Live:
    """The running app: its URL, its state (for expected values) and the read key."""

    def __init__(self, url: str, app, key: str):
        self.url, self.app, self.key = url, app, key

    @property
    def generation(self):
        return self.app.state.holder.current

    def expected(self, kind: str, owner: str | None = None,
                 segment: str | None = None) -> pd.DataFrame:
        """The list as the served scores rank it: value descending, then account_id."""
        t = self.generation.scorer.table
        t = t[t[VALUE[kind]].notna()]
        if owner is not None:
            t = t[t["owner"] == owner]
        if segment is not None:
            t = t[t["segment"] == segment]
        return t.sort_values([VALUE[kind], "account_id"], ascending=[False, True])

    def busiest_owner(self) -> str:
        """The owner with the most accounts in the churn list (enough for two pages)."""
        owners = self.expected("churn")["owner"].value_counts()
        assert owners.iloc[0] > PAGE_SIZE, f"the fixture book needs an owner with > {PAGE_SIZE}"
        return str(owners.index[0])


@pytest.fixture(scope="module")
def live(chromium, served_data, tmp_path_factory) -> Iterator[Live]:
    """The real app with auth on, under uvicorn on a free loopback port, loaded and ready."""
    from serving.app import create_app

    keys = tmp_path_factory.mktemp("page-keys") / "keys.json"
    key = KeyStore(keys).create("account-manager", "read")
    settings = ServingSettings(data_dir=served_data, api_keys_path=keys)
    assert settings.auth_enabled
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        with serving(create_app(settings), key) as live:
            yield live


@contextmanager
def serving(app, key: str) -> Iterator[Live]:
    """``app`` under uvicorn on a free loopback port, yielded once its first load is in."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_ready(server, app)
        yield Live(f"http://127.0.0.1:{port}", app, key)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_ready(server, app, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = app.state.holder
        if server.started and holder.current is not None:
            return
        if holder.last_error:
            pytest.fail(f"the app did not load the served book: {holder.last_error}")
        time.sleep(0.2)
    pytest.fail(f"the app was not ready after {timeout:.0f} s")


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken install reads like a missing one
            _unavailable(f"chromium at {chromium} does not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture()
def context(browser, live):
    """A fresh browser profile (no cookies) per test."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1440, "height": 1000},
                                  accept_downloads=True)
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture()
def page(context, live):
    """A page signed in with the read key, showing the churn list."""
    page = context.new_page()
    sign_in(page, live.key)
    return page


# --- helpers ----------------------------------------------------------------------------------
def go(page, locator) -> None:
    """Click something that loads a new page and wait until it has loaded."""
    with page.expect_navigation():
        locator.click()


def sign_in(page, key: str) -> None:
    page.goto("/")
    page.get_by_label("Read key").fill(key)
    go(page, page.get_by_role("button", name="Sign in"))
    expect(page.locator(ROWS).first).to_be_visible()


def filter_by(page, owner: str | None = None, segment: str | None = None) -> None:
    if owner is not None:
        page.get_by_label("Owner").select_option(owner)
    if segment is not None:
        page.get_by_label("Segment").select_option(segment)
    go(page, page.get_by_role("button", name="Filter"))


def tab(page, label: str) -> None:
    go(page, page.get_by_role("link", name=label, exact=True))


def rows(page) -> list[dict]:
    return page.eval_on_selector_all(ROWS, READ_ROWS)


USD = money_formatter("USD", "en_US")  # the default currency setting


def money(value: float) -> str:
    return USD(value)


def pct(value: float) -> str:
    return f"{round(value, 6):.1%}"


def assert_rows_match(shown: list[dict], expected: pd.DataFrame, kind: str) -> None:
    """Every shown cell is the served value of that account, in the expected order."""
    assert [r["id"] for r in shown] == list(expected["account_id"])
    for r, (_, e) in zip(shown, expected.iterrows(), strict=True):
        assert r["owner"] == (e["owner"] or "") and r["segment"] == (e["segment"] or ""), r["id"]
        assert r["arr"] == money(e["arr"]), r["id"]
        assert r["prob"] == pct(e[PROBABILITY[kind]]), r["id"]
        assert r["value"] == money(e[VALUE[kind]]), r["id"]
        assert r["play"] == e["play"], r["id"]
        assert r["reasons"], f"{r['id']}: no reasons shown"
        if kind == "churn":
            assert r["tier"] == e["risk_tier"], r["id"]
        if kind == "cross_sell":
            assert r["product"] == e["next_best_product"], r["id"]


def query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


# --- tests ------------------------------------------------------------------------------------
def test_asks_once_for_a_read_key_keeps_it_httponly_and_signs_out(context, live):
    page = context.new_page()
    response = page.goto("/")
    assert response.status == 401
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "page-login.png"))
    key_field = page.get_by_label("Read key")
    expect(key_field).to_be_visible()
    expect(page.locator("#opportunities")).to_have_count(0)

    wrong = "prop_" + "x" * 43
    key_field.fill(wrong)
    go(page, page.get_by_role("button", name="Sign in"))
    expect(page.get_by_role("alert")).to_have_text("API key not recognised (unknown or revoked)")
    expect(page.get_by_label("Read key")).to_have_value("")  # the page never echoes a key
    assert wrong not in page.content()
    assert context.cookies() == []

    page.get_by_label("Read key").fill(live.key)
    go(page, page.get_by_role("button", name="Sign in"))
    expect(page.locator(ROWS)).to_have_count(PAGE_SIZE)
    [cookie] = context.cookies()
    assert (cookie["name"], cookie["value"]) == (COOKIE_NAME, live.key)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # out of reach of scripts

    assert page.reload().status == 200  # asked once: a reload and a new tab go straight in
    expect(page.locator(ROWS)).to_have_count(PAGE_SIZE)
    expect(page.get_by_label("Read key")).to_have_count(0)
    other = context.new_page()
    assert other.goto("/?kind=upsell").status == 200
    expect(other.locator(ROWS)).to_have_count(PAGE_SIZE)
    other.close()

    go(page, page.get_by_role("button", name="Sign out"))
    expect(page.get_by_label("Read key")).to_be_visible()
    assert context.cookies() == []
    assert page.reload().status == 401
    expect(page.get_by_label("Read key")).to_be_visible()


def test_churn_list_shows_ranked_accounts_with_scores_reasons_plays_and_kpis(page, live):
    expected = live.expected("churn")
    shown = rows(page)
    assert [r["rank"] for r in shown] == list(range(1, PAGE_SIZE + 1))
    assert_rows_match(shown, expected.head(PAGE_SIZE), "churn")
    expect(page.locator("#list-total")).to_have_text(f"{len(expected):,}")
    expect(page.locator("#list-sum")).to_have_text(money(expected["arr_at_risk"].sum()))
    expect(page.locator("#shown")).to_have_text(f"1–{PAGE_SIZE}")

    # the first account's reasons are the churn model's own, in its order
    scorer = live.generation.scorer
    top = scorer.reasons([scorer.row_of[shown[0]["id"]]], ("churn",))[0]["churn"]
    ups = [r for r in shown[0]["reasons"] if r.startswith("▲")]
    downs = [r for r in shown[0]["reasons"] if r.startswith("▼")]
    assert len(ups) == len(top["raising"]) and len(downs) == len(top["lowering"])
    for text, (direction, reason) in zip(
            ups + downs, [("raising", r) for r in top["raising"]]
            + [("lowering", r) for r in top["lowering"]], strict=True):
        assert text.removeprefix("▲Raises: ").removeprefix("▼Lowers: ") == reason_text(
            reason.feature, reason.description, reason.value, "churn", direction), text

    kpis = live.generation.kpis
    for name in ("logo_churn_rate", "renewal_rate", "net_revenue_retention"):
        assert kpis[name] is not None, name
        expect(page.locator(f"[data-kpi={name}] .value")).to_have_text(pct(kpis[name]))
    expect(page.locator("[data-kpi=logo_churn_rate_ttm]")).to_have_text(
        f"trailing 12 months: {pct(kpis['logo_churn_rate_ttm'])}")
    expect(page.locator("[data-kpi=arr] .value")).to_have_text(money(kpis["arr"]))
    assert len(kpis["arr_by_segment"]) >= 2
    for segment, arr in kpis["arr_by_segment"].items():
        expect(page.locator(f"[data-kpi=arr_by_segment] dd[data-segment='{segment}']")
               ).to_have_text(money(arr))

    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "page-churn.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def test_tabs_switch_between_the_three_lists(page, live):
    for label, kind, header in (("Accounts to grow", "upsell", "Upsell probability"),
                                ("Cross-sell", "cross_sell", "Next best product"),
                                ("Accounts to save", "churn", "Churn probability")):
        tab(page, label)
        expect(page.get_by_role("link", name=label, exact=True)).to_have_attribute(
            "aria-current", "page")
        assert query(page)["kind"] == [kind]
        expect(page.locator("#opportunities thead")).to_contain_text(header)
        assert_rows_match(rows(page), live.expected(kind).head(PAGE_SIZE), kind)


def test_filters_by_owner_and_segment_keep_only_those_accounts(page, live):
    owner = live.busiest_owner()
    filter_by(page, owner=owner)
    expected = live.expected("churn", owner=owner)
    shown = rows(page)
    assert shown and all(r["owner"] == owner for r in shown)
    assert_rows_match(shown, expected.head(PAGE_SIZE), "churn")
    expect(page.locator("#list-total")).to_have_text(f"{len(expected):,}")
    # the rank shown is the rank within the filtered list; the whole list's is kept beside it
    assert [r["rank"] for r in shown] == list(range(1, len(shown) + 1))
    all_ids = list(live.expected("churn")["account_id"])
    assert [r["overall"] for r in shown] == [all_ids.index(r["id"]) + 1 for r in shown]
    assert shown[-1]["overall"] > len(shown)  # the busiest owner does not hold the top 25

    segment = str(expected["segment"].iloc[0])
    other_segment = next(s for s in live.generation.scorer.segments() if s != segment)
    filter_by(page, segment=other_segment)  # AND: this owner has no account there
    assert live.expected("churn", owner, other_segment).empty
    expect(page.locator(ROWS)).to_have_count(0)
    expect(page.locator("#opportunities tbody")).to_contain_text("No accounts match")

    filter_by(page, owner="")  # segment only
    shown = rows(page)
    assert shown and all(r["segment"] == other_segment for r in shown)
    assert_rows_match(shown, live.expected("churn", segment=other_segment).head(PAGE_SIZE),
                      "churn")

    tab(page, "Accounts to grow")  # filters carry over
    expect(page.get_by_label("Segment")).to_have_value(other_segment)
    assert_rows_match(rows(page), live.expected("upsell", segment=other_segment)
                      .head(PAGE_SIZE), "upsell")

    go(page, page.get_by_role("link", name="Clear filters"))
    expect(page.locator("#list-total")).to_have_text(f"{len(live.expected('upsell')):,}")


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "one-owner"])
def test_next_page_continues_the_ranking_with_other_accounts(page, live, filtered):
    owner = live.busiest_owner() if filtered else None
    if owner:
        filter_by(page, owner=owner)
    expected = live.expected("churn", owner=owner)
    first = rows(page)
    go(page, page.get_by_role("link", name="Next page"))
    last = min(2 * PAGE_SIZE, len(expected))
    expect(page.locator("#shown")).to_have_text(f"{PAGE_SIZE + 1}–{last}")
    second = rows(page)
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert_rows_match(second, expected.iloc[PAGE_SIZE: 2 * PAGE_SIZE], "churn")
    assert min(r["rank"] for r in second) > max(r["rank"] for r in first)
    assert query(page).get("owner") == ([owner] if owner else None)

    go(page, page.get_by_role("link", name="First page"))
    assert [r["id"] for r in rows(page)] == [r["id"] for r in first]


@pytest.mark.parametrize(("kind", "label", "filtered"), [
    ("churn", "Accounts to save", False), ("cross_sell", "Cross-sell", True)])
def test_csv_download_has_the_lists_accounts_in_the_same_order(page, live, kind, label,
                                                                filtered):
    if kind != "churn":
        tab(page, label)
    owner = live.busiest_owner() if filtered else None
    if owner:
        filter_by(page, owner=owner)
    shown = rows(page)
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("Download CSV")).click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == (
        f"opportunities-{kind}-{live.generation.scorer.as_of}.csv")
    table = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))

    expected = live.expected(kind, owner=owner)
    assert [r["account_id"] for r in table] == list(expected["account_id"])  # the whole list
    expect(page.locator("#list-total")).to_have_text(f"{len(table):,}")
    for r, c in zip(shown, table[:PAGE_SIZE], strict=True):  # the page's rows, cell by cell
        assert (r["id"], r["rank"], r["overall"], r["owner"]) == (
            c["account_id"], int(c["list_rank"]), int(c["rank"]), c["owner"])
        assert r["arr"] == money(float(c["arr"]))
        assert r["prob"] == pct(float(c[PROBABILITY[kind]]))
        assert r["value"] == money(float(c[VALUE[kind]]))
        assert r["play"] == c["play"]
        # the plain-language reasons, as the page shows them
        assert c["reasons_text"] == "; ".join(
            re.sub(r"^[▲▼](Raises|Lowers): ", lambda m: m.group(1).lower() + ": ", text)
            for text in r["reasons"]), r["id"]


VISIBLE_ROWS = """rows => rows.filter(r => {
  const box = r.getBoundingClientRect();
  return box.top >= 0 && box.bottom <= window.innerHeight;
}).length"""


def test_list_is_dense_enough_to_show_eight_accounts_above_the_fold(browser, live):
    context = browser.new_context(base_url=live.url, viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        sign_in(page, live.key)
        visible = page.eval_on_selector_all(ROWS, VISIBLE_ROWS)
        assert visible >= 8, f"only {visible} accounts above the fold at 1366x768"
        # nothing scrolls sideways, and each row's reason and play are there
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        assert page.evaluate("(t => t.scrollWidth <= t.parentElement.clientWidth)"
                             "(document.getElementById('opportunities'))")
        first = rows(page)[0]
        assert first["reasons"] and first["play"] and first["renewal"] is not None
        ARTEFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "page-churn-1366x768.png"))
    finally:
        context.close()


def renewal_days(live) -> pd.Series:
    """days_to_renewal per account, read from the served snapshot."""
    snapshot = live.generation.scorer.snapshot
    return snapshot.set_index("account_id")["days_to_renewal"].astype("float64")


def test_renewal_column_shows_the_next_renewal_date(page, live):
    days = renewal_days(live)
    as_of = pd.Timestamp(live.generation.scorer.as_of)
    shown = rows(page)
    assert any(r["renewal"] for r in shown)
    for r in shown:
        d = days[r["id"]]
        assert r["renewal"] == (None if pd.isna(d) else
                                (as_of + pd.Timedelta(days=int(d))).date().isoformat()), r["id"]


def test_columns_sort_the_whole_filtered_list_and_keep_the_ranks(page, live):
    owner = live.busiest_owner()
    filter_by(page, owner=owner)
    listed = live.expected("churn", owner=owner).reset_index(drop=True)
    listed["list_rank"] = range(1, len(listed) + 1)
    listed["days"] = listed["account_id"].map(renewal_days(live))

    go(page, page.get_by_role("link", name="Renewal"))  # soonest first, no renewal last
    assert query(page)["sort"] == ["renewal"] and query(page)["owner"] == [owner]
    soonest = listed.sort_values("days", na_position="last", kind="stable")
    shown = rows(page)
    assert [r["id"] for r in shown] == list(soonest["account_id"].head(PAGE_SIZE))
    assert [r["rank"] for r in shown] == list(soonest["list_rank"].head(PAGE_SIZE))
    expect(page.get_by_role("columnheader", name=re.compile("Renewal"))).to_have_attribute(
        "aria-sort", "ascending")
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "page-churn-owner-by-renewal.png"))
    go(page, page.get_by_role("link", name="Next page"))
    assert [r["id"] for r in rows(page)] == list(
        soonest["account_id"].iloc[PAGE_SIZE: 2 * PAGE_SIZE])
    expect(page.locator("#shown")).to_have_text(
        f"{PAGE_SIZE + 1}–{min(2 * PAGE_SIZE, len(listed))}")

    go(page, page.get_by_role("link", name=re.compile("^Renewal")))  # again: latest first
    latest = listed.sort_values("days", ascending=False, na_position="last", kind="stable")
    assert [r["id"] for r in rows(page)] == list(latest["account_id"].head(PAGE_SIZE))

    go(page, page.get_by_role("link", name="ARR", exact=True))  # biggest first
    biggest = listed.sort_values("arr", ascending=False, kind="stable")
    assert_rows_match(rows(page), biggest.head(PAGE_SIZE), "churn")

    go(page, page.get_by_role("link", name="back to the ranking"))
    assert_rows_match(rows(page), listed.head(PAGE_SIZE), "churn")


@pytest.mark.parametrize("by", ["owner", "segment"])
def test_kpi_strip_describes_the_filtered_accounts(page, live, by):
    from features.kpis import compute_kpis
    from features.validation import load_tables

    kpis = live.generation.kpis
    month = pd.Timestamp(f"{kpis['month']}-01").date()
    value = live.busiest_owner() if by == "owner" else live.generation.scorer.segments()[0]
    filter_by(page, **{by: value})
    tables = load_tables(live.app.state.settings.raw_dir)
    frame = compute_kpis(tables, by=("month", by), start=month, end=month,
                         gross_margin=live.app.state.settings.gross_margin)
    mine = frame[frame[by] == value].iloc[0]
    assert mine["arr_end"] != kpis["arr"]  # a filter that changes the figures
    expect(page.locator("#kpi-heading")).to_contain_text(value)
    expect(page.locator("[data-kpi=arr] .value")).to_have_text(money(mine["arr_end"]))
    for name in ("logo_churn_rate", "renewal_rate", "net_revenue_retention"):
        shown = "–" if pd.isna(mine[name]) else pct(float(mine[name]))
        expect(page.locator(f"[data-kpi={name}] .value")).to_have_text(shown)
    shown = "–" if pd.isna(mine["logo_churn_rate_ttm"]) else pct(float(mine["logo_churn_rate_ttm"]))
    expect(page.locator("[data-kpi=logo_churn_rate_ttm]")).to_have_text(
        f"trailing 12 months: {shown}")
