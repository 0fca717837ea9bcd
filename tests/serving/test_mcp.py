"""The MCP tools through the official SDK's own client: in process, and over streamable HTTP
under ``/mcp`` of the real app with API keys (a missing or unknown key is refused, a read key
works). Every tool answers what the matching HTTP route answers for the same generation."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from serving.app import create_app
from serving.batch import score_duckdb
from serving.history import ScoreHistory
from serving.keys import KeyStore
from serving.mcp_server import build_server
from serving.settings import ServingSettings
from serving.state import load_generation
from tests.serving.test_api import serve
from tests.serving.test_reload import running

TOOLS = {"get_account", "list_opportunities", "account_history"}


@pytest.fixture(scope="module")
def history(served_data, tmp_path_factory) -> ScoreHistory:
    """Two runs of the shared book written by the real batch scorer into a scratch folder."""
    root = tmp_path_factory.mktemp("history")
    settings = ServingSettings(data_dir=served_data, auth_enabled=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for as_of in (date(2025, 4, 1), date(2025, 5, 1)):
            score_duckdb(settings, as_of, str(root))
    return ScoreHistory(root)


def call(server, name: str, arguments: dict):
    async def go():
        async with Client(server) as client:
            return await client.call_tool(name, arguments)
    return asyncio.run(go())


def test_the_tools_listed_by_the_sdk_client_are_the_read_only_four(generation, history):
    async def names():
        async with Client(build_server(lambda: generation, lambda: history,
                                       changes=lambda *_: {})) as client:
            return {t.name for t in (await client.list_tools()).tools}
    assert asyncio.run(names()) == TOOLS | {"what_changed"}


def test_get_account_answers_what_the_account_route_answers(generation, history, served_data):
    account_id = str(generation.scorer.ids[7])
    result = call(build_server(lambda: generation, lambda: history), "get_account",
                  {"account_id": account_id})
    assert not result.is_error
    with serve(generation, ServingSettings(data_dir=served_data, auth_enabled=False)) as client:
        expected = client.get(f"/v1/accounts/{account_id}").json()
    got = result.structured_content
    assert got["as_of"] == generation.scorer.as_of.isoformat()
    for key in ("account_id", "churn_probability", "upsell_probability", "risk_tier",
                "arr_at_risk", "play", "reasons"):
        assert got[key] == expected[key], key


def test_list_opportunities_ranks_like_the_api_and_refuses_an_unknown_owner(generation,
                                                                           history):
    server = build_server(lambda: generation, lambda: history)
    result = call(server, "list_opportunities", {"kind": "upsell", "limit": 5})
    items = result.structured_content["items"]
    values = [i["expected_expansion"] for i in items]
    assert len(items) == 5 and values == sorted(values, reverse=True)
    refused = call(server, "list_opportunities", {"owner": "Nobody Atall"})
    assert refused.is_error
    assert "no account has owner 'Nobody Atall'" in refused.content[0].text


def test_account_history_is_the_runs_oldest_first_and_unknown_accounts_say_so(generation,
                                                                             history):
    server = build_server(lambda: generation, lambda: history)
    account_id = str(generation.scorer.ids[3])
    result = call(server, "account_history", {"account_id": account_id})
    items = result.structured_content["items"]
    assert [i["as_of"] for i in items] == ["2025-04-01", "2025-05-01"]
    stored = history.read(date(2025, 5, 1)).set_index("account_id").loc[account_id]
    assert items[1]["churn_probability"] == pytest.approx(stored["churn_probability"], abs=0)
    assert set(items[1]["model_versions"]) >= {"churn", "upsell"}
    assert isinstance(items[1]["churn_reasons"], dict)  # JSON text in the file, an object here
    only = call(server, "account_history", {"account_id": account_id,
                                            "from_date": "2025-04-15"})
    assert [i["as_of"] for i in only.structured_content["items"]] == ["2025-05-01"]
    for arguments, message in (
        ({"account_id": "nobody"}, "no scores for account 'nobody'"),
        ({"account_id": account_id, "from_date": "May 1"}, "not an ISO date"),
        ({"account_id": account_id, "from_date": "2025-06-01", "to_date": "2025-01-01"},
         "is after"),
    ):
        refused = call(server, "account_history", arguments)
        assert refused.is_error and message in refused.content[0].text


def test_no_generation_yet_is_a_tool_error_not_a_crash(history):
    result = call(build_server(lambda: None, lambda: history), "get_account",
                  {"account_id": "A1"})
    assert result.is_error and "no scores are being served yet" in result.content[0].text


def test_over_http_the_api_keys_guard_the_mcp_endpoint(generation, served_data, tmp_path: Path):
    keys = tmp_path / "keys.json"
    read_key = KeyStore(keys).create("assistant", "read")
    settings = ServingSettings(data_dir=served_data, auth_enabled=True, api_keys_path=keys)
    app = create_app(settings, loader=lambda _s: generation, load_on_start=False)
    app.state.holder.reload()
    account_id = str(generation.scorer.ids[0])
    with running(app) as base:
        refused = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                  "method": "tools/list"})
        assert refused.status_code == 401
        assert refused.json()["detail"]["error"] == "unauthorized"
        wrong = httpx.post(f"{base}/mcp", headers={"X-API-Key": "prop_not_a_key"}, json={})
        assert wrong.status_code == 401

        async def over_http():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {read_key}"})
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
                return await c.call_tool("get_account", {"account_id": account_id})
        result = asyncio.run(over_http())
    assert not result.is_error
    assert result.structured_content["account_id"] == account_id


def test_propensity_mcp_serves_the_tools_over_stdio(generation, served_data):
    import os
    import sys

    from mcp import StdioServerParameters

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = StdioServerParameters(
        command=sys.executable,
        args=["-c", "from propensity_cli import app; app()", "mcp", "--data-dir",
              str(served_data)],
        env=env, cwd=str(Path(__file__).resolve().parents[2]))
    account_id = str(generation.scorer.ids[1])

    async def over_stdio():
        async with Client(command) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            return names, await client.call_tool("get_account", {"account_id": account_id})
    names, result = asyncio.run(over_stdio())
    assert names == TOOLS | {"what_changed"}
    assert result.structured_content["churn_probability"] == pytest.approx(
        float(generation.scorer.cols["churn_probability"][1]), abs=1e-6)


def test_propensity_mcp_without_models_exits_with_a_clear_message(tmp_path):
    from typer.testing import CliRunner

    from propensity_cli import app

    result = CliRunner().invoke(app, ["mcp", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "cannot serve the MCP tools" in result.output


def test_what_changed_names_the_feature_moved_on_purpose_like_the_changes_route(
        served_data, tmp_path_factory):
    from serving.mcp_server import served_changes
    from tests.serving.week_book import AFTER, BEFORE, MOVES, build_week

    week = build_week(served_data, tmp_path_factory.mktemp("mcp-week"))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        generation = load_generation(week.settings)
        current = lambda: generation  # noqa: E731
        server = build_server(current, lambda: ScoreHistory(week.data_dir / "history"),
                              served_changes(week.settings, current))
        result = call(server, "what_changed", {"kind": "churn", "limit": 50})
        refused = call(server, "what_changed", {"since": "2020-01-01"})
    answer = result.structured_content
    assert (answer["as_of"], answer["previous_as_of"]) == (str(AFTER), str(BEFORE))
    by_id = {i["account_id"]: i for i in answer["items"]}
    for account_id, (feature, _) in MOVES.items():
        assert by_id[account_id]["drivers"][0]["feature"] == feature
    assert refused.is_error and "2020-01-01" in refused.content[0].text
