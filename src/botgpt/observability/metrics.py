"""Prometheus metrics: HTTP traffic, chat turns, tokens and cost, first-token latency.

Metric objects live in one registry of this module (not the library's global one) so the
exposition holds exactly what BOT GPT defines plus the process collector. Services record
through the small functions below; labels are bounded (route templates, never raw paths;
provider and model names from settings). Each process exposes its own figures: Prometheus
scrapes every instance and sums them.
"""

from __future__ import annotations

import atexit
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
# `botgpt serve --workers N` sets PROMETHEUS_MULTIPROC_DIR before starting its processes: each
# then writes its figures to files there and /metrics, whichever process answers, sums them.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:
    atexit.register(multiprocess.mark_process_dead, os.getpid())

HTTP_REQUESTS = Counter(
    "botgpt_http_requests",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "botgpt_http_request_duration_seconds",
    "Time to handle a request (streams: until the stream ends)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
TURNS = Counter(
    "botgpt_chat_turns",
    "Chat turns by how they ended (complete, failed, cancelled)",
    ["provider", "model", "status"],
    registry=REGISTRY,
)
TOKENS = Counter(
    "botgpt_llm_tokens",
    "Tokens sent to (prompt) and received from (completion) language models",
    ["provider", "model", "kind"],
    registry=REGISTRY,
)
COST = Counter(
    "botgpt_llm_cost_usd",
    "Cost of chat turns in US dollars (models with a price in BOTGPT_LLM_PRICES)",
    ["provider", "model"],
    registry=REGISTRY,
)
FIRST_TOKEN = Histogram(
    "botgpt_llm_time_to_first_token_seconds",
    "From the provider call to the first streamed text",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "botgpt_rate_limited",
    "Requests refused by a rate limit",
    ["scope"],
    registry=REGISTRY,
)
STREAMS_ACTIVE = Gauge(
    "botgpt_chat_streams_active",
    "Replies being generated in this process",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
BREAKER_OPEN = Gauge(
    "botgpt_llm_circuit_open",
    "1 while a provider's circuit breaker is open (calls fail fast), else 0",
    ["provider", "model"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
INGESTIONS = Counter(
    "botgpt_document_ingestions",
    "Document ingestion runs by outcome (ready, failed)",
    ["status"],
    registry=REGISTRY,
)


def record_turn(
    provider: str,
    model: str,
    status: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: float | None,
) -> None:
    """Count a finished turn, its tokens and its cost."""
    TURNS.labels(provider, model, status).inc()
    TOKENS.labels(provider, model, "prompt").inc(prompt_tokens)
    TOKENS.labels(provider, model, "completion").inc(completion_tokens)
    if cost_usd:
        COST.labels(provider, model).inc(cost_usd)


def exposition() -> bytes:
    """The registry in Prometheus text format (summed over the serving processes, if many)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
