"""Server-Sent Events framing of turn events, for live and finished replies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import orjson
from fastapi.responses import StreamingResponse

from botgpt.conversations.records import TurnEvent
from botgpt.conversations.streams import LiveTurn, StreamHub

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}
HEARTBEAT_SECONDS = 15.0


def encode(event_id: int, event: TurnEvent) -> bytes:
    """One SSE frame; pings are comments so clients ignore them."""
    if event.event == "ping":
        return b": ping\n\n"
    data = orjson.dumps(event.client_data())
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event.event.encode(), data)


def live_response(
    hub: StreamHub, live: LiveTurn, after: int = 0, status_code: int = 200
) -> StreamingResponse:
    """Stream a live turn's events from id `after` on."""

    async def body() -> AsyncIterator[bytes]:
        async for event_id, event in hub.subscribe(live, after, HEARTBEAT_SECONDS):
            yield encode(event_id, event)

    return StreamingResponse(
        body(), status_code=status_code, media_type="text/event-stream", headers=SSE_HEADERS
    )


def remote_response(events: AsyncIterator[tuple[int, TurnEvent]]) -> StreamingResponse:
    """Stream a turn another process is generating (read from Redis)."""

    async def body() -> AsyncIterator[bytes]:
        async for event_id, event in events:
            yield encode(event_id, event)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def replay_response(events: Iterable[tuple[int, TurnEvent]]) -> StreamingResponse:
    """Stream already-known events (a reply that finished before the client attached)."""

    async def body() -> AsyncIterator[bytes]:
        for event_id, event in events:
            yield encode(event_id, event)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
