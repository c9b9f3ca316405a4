"""Which documents a conversation answers from: the conversation_documents link table.

The link belongs to conversations: documents know nothing of conversations (deleting a
document removes its links through the foreign key). The helpers run inside the chat
turn's synchronous SQL transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Connection, ForeignKey, String, Table, delete, insert, select

from botgpt.db import Base

conversation_documents = Table(
    "conversation_documents",
    Base.metadata,
    Column(
        "conversation_id",
        String(36),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "document_id",
        String(36),
        ForeignKey("documents.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


def attach_documents(conn: Connection, conversation_id: str, document_ids: Sequence[str]) -> None:
    """Set the documents of a conversation (replacing the previous set), in the caller's txn."""
    conn.execute(
        delete(conversation_documents).where(
            conversation_documents.c.conversation_id == conversation_id
        )
    )
    ids = list(dict.fromkeys(document_ids))
    if ids:
        conn.execute(
            insert(conversation_documents),
            [{"conversation_id": conversation_id, "document_id": d} for d in ids],
        )


def attached_document_ids(conn: Connection, conversation_id: str) -> list[str]:
    """The documents a conversation answers from."""
    rows = conn.execute(
        select(conversation_documents.c.document_id).where(
            conversation_documents.c.conversation_id == conversation_id
        )
    )
    return [row[0] for row in rows]
