"""Domain events other parts subscribe to (webhooks): who they concern, what, and the data.

Services call an `EventSink` synchronously at the moment something happened; a sink must
return at once (queue the work) and never raise into the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (owner user id, event type such as "message.completed", JSON-able data)
EventSink = Callable[[str, str, dict[str, Any]], None]

EVENT_TYPES = (
    "conversation.created",
    "message.completed",
    "message.failed",
    "message.cancelled",
    "document.ready",
    "document.failed",
    "bot.session_started",
    "bot.message_received",
    "bot.message_answered",
    "bot.feedback",
)


def no_events(owner_id: str, event: str, data: dict[str, Any]) -> None:
    """The sink used when nothing listens."""
