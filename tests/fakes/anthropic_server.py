"""A real, scriptable HTTP server on 127.0.0.1 that streams like Anthropic's Messages API.

Same machinery as `tests/fakes/openai_server.py` (`Reply` queue, recorded
requests); the helpers build the Messages SSE events (`message_start`,
`content_block_delta`, `message_delta`, `message_stop`, `ping`, `error`).
`base_url` is the server root: the provider appends `/v1/messages`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tests.fakes.openai_server import RecordedRequest, Reply, ScriptedHTTPServer, Step, sse

__all__ = [
    "FakeAnthropicServer",
    "anthropic_error_body",
    "anthropic_event",
    "anthropic_stream",
]


def anthropic_event(kind: str, **fields: Any) -> bytes:
    """One Messages stream event (`event:` line plus JSON data with `type`)."""
    return sse({"type": kind, **fields}, event=kind)


def anthropic_error_body(kind: str, message: str) -> dict[str, Any]:
    """The JSON body of an Anthropic HTTP error (and of an `error` event)."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_stream(
    pieces: Sequence[str],
    *,
    input_tokens: int = 11,
    output_tokens: int = 4,
    stop_reason: str = "end_turn",
    model: str = "claude-fake",
    stop: bool = True,
) -> list[Step]:
    """A complete Messages stream with a ping and one text block."""
    steps: list[Step] = [
        anthropic_event(
            "message_start",
            message={
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            },
        ),
        anthropic_event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        anthropic_event("ping"),
    ]
    steps += [
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": p})
        for p in pieces
    ]
    steps += [
        anthropic_event("content_block_stop", index=0),
        anthropic_event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": output_tokens},
        ),
    ]
    if stop:
        steps.append(anthropic_event("message_stop"))
    return steps


class FakeAnthropicServer(ScriptedHTTPServer):
    """An Anthropic Messages fake; by default streams "Hello world"."""

    def __init__(self, default_reply: Callable[[RecordedRequest], Reply] | None = None) -> None:
        super().__init__(
            default_reply or (lambda _req: Reply.sse(anthropic_stream(["Hello", " world"])))
        )

    async def __aenter__(self) -> FakeAnthropicServer:
        await self.start()
        return self
