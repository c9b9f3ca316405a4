"""`botgpt chat`: talk to the configured model from the terminal, through the real chat turn.

Every turn goes through the same ChatService as the API (stored, budgeted, grounded when
documents are given), so a conversation started here shows up in the API and vice versa.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from botgpt.config import Settings
from botgpt.exceptions import DomainError

HELP = "Type a message; /new starts a new conversation, /quit (or Ctrl-D) leaves."


async def chat_loop(
    settings: Settings,
    user: str | None,
    conversation_id: str | None,
    document_ids: list[str],
    stdin: TextIO,
    out: TextIO,
) -> int:
    """Read messages from `stdin`, stream the replies to `out`; returns the exit code."""
    from botgpt.cli_users import resolve_user
    from botgpt.conversations.records import TurnRequest
    from botgpt.conversations.turn import ChatService
    from botgpt.main import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        container = app.state.container
        chat: ChatService = container.chat
        try:
            owner = await resolve_user(container.sessions, user or settings.admin_email)
        except DomainError as exc:
            print(exc.message, file=sys.stderr)
            return 2
        mode = "grounded" if document_ids else "open"
        print(f"{HELP} ({chat.provider.name}: {chat.provider.model})", file=out, flush=True)
        while True:
            print("you> ", end="", file=out, flush=True)
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip() == "/quit":
                print(file=out)
                return 0
            text = line.strip()
            if not text:
                continue
            if text == "/new":
                conversation_id = None
                print("(new conversation)", file=out, flush=True)
                continue
            try:
                turn = await chat.prepare(
                    TurnRequest(
                        owner,
                        text,
                        conversation_id=conversation_id,
                        mode=mode,
                        document_ids=document_ids if conversation_id is None else None,
                    )
                )
                conversation_id = turn.conversation_id
            except DomainError as exc:
                print(f"error: {exc.message}", file=out, flush=True)
                continue
            print("bot> ", end="", file=out, flush=True)
            async for event in chat.events(turn):
                if event.event == "delta":
                    print(event.data["text"], end="", file=out, flush=True)
                elif event.event == "error":
                    print(f"\n[the model failed: {event.data['message']}]", end="", file=out)
            print(file=out, flush=True)
            for c in (turn.assistant.citations or [])[:5]:
                page = f", page {c['page']}" if c.get("page") else ""
                print(f"  [{c['number']}] {c['document_name']}{page}", file=out, flush=True)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The `chat` command."""
    chat = sub.add_parser("chat", help="chat with the model in the terminal")
    chat.add_argument("--user", help="email or id of the user to chat as (default: the admin)")
    chat.add_argument("--conversation", help="continue this conversation")
    chat.add_argument(
        "--documents", nargs="+", default=[], metavar="ID", help="answer from these documents"
    )
    return chat
