"""GET /metrics: Prometheus exposition of traffic, turns, tokens, first-token latency."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.conftest import AppCtx, AuthedUser


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_turns_tokens_and_first_token_are_counted(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx
) -> None:
    before = await scrape(client)
    ctx.fake.enqueue("Hello there, how can I help?")
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    assert r.status_code == 201
    usage = r.json()["assistant_message"]["usage"]
    after = await scrape(client)
    turn = {"provider": "fake", "model": "fake-model"}
    done = "botgpt_chat_turns_total"
    assert (
        value(after, done, **turn, status="complete")
        == value(before, done, **turn, status="complete") + 1
    )
    tokens = "botgpt_llm_tokens_total"
    for kind, n in (("prompt", usage["prompt_tokens"]), ("completion", usage["completion_tokens"])):
        assert (
            value(after, tokens, **turn, kind=kind) - value(before, tokens, **turn, kind=kind) == n
        )
    ttft = "botgpt_llm_time_to_first_token_seconds_count"
    assert value(after, ttft, provider="fake") == value(before, ttft, provider="fake") + 1
    assert value(after, "botgpt_llm_circuit_open", **turn) == 0
    assert "botgpt_chat_streams_active" in {name for name, _ in after}


async def test_http_requests_are_labelled_by_route_template(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    cid = r.json()["conversation_id"]
    await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    await client.get(f"/no/such/{cid}")
    r = await client.get("/metrics")
    assert cid not in r.text  # raw paths never become label values
    samples = await scrape(client)
    requests = "botgpt_http_requests_total"
    route = "/api/v1/conversations/{conversation_id}"
    assert value(samples, requests, method="GET", route=route, status="200") >= 1
    assert value(samples, requests, method="GET", route="<unmatched>", status="404") >= 1
    duration = "botgpt_http_request_duration_seconds_count"
    assert value(samples, duration, method="GET", route=route) >= 1


async def test_a_configured_token_is_required(client: httpx.AsyncClient, ctx: AppCtx) -> None:
    settings = ctx.app.state.container.settings
    settings.metrics_token = SecretStr("scrape-secret")
    try:
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-secret"}
        assert (await client.get("/metrics", headers=right)).status_code == 200
    finally:
        settings.metrics_token = None
