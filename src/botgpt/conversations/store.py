"""The chat turn's SQL, as synchronous Core functions run by `SqlRunner` in one transaction.

On PostgreSQL every statement is a round trip (and so are BEGIN and COMMIT), so the turn's
common writes also come as single statements for `SqlRunner.run_single`: data-modifying
CTEs do in one statement what SQLite does in a transaction of several.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from botgpt.conversations.links import attach_documents, attached_document_ids
from botgpt.conversations.models import Conversation, Message
from botgpt.conversations.records import MessageRecord
from botgpt.ids import new_id

conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)
c, m = conversations.c, messages.c

PREVIEW_CHARS = 200

_INSERT_MESSAGES = insert(messages)
_INSERT_CONVERSATION = insert(conversations)

# The write comes first in the transaction: it takes SQLite's write lock (or the
# PostgreSQL row lock) before anything is read, so concurrent sends to one
# conversation get consecutive, gap-free sequence numbers.
_BUMP = (
    update(conversations)
    .where(c.id == bindparam("cid"), c.user_id == bindparam("uid"))
    .values(
        next_seq=c.next_seq + 2,
        message_count=c.message_count + 2,
        last_message_preview=bindparam("preview"),
        updated_at=bindparam("now"),
    )
    .returning(c.next_seq, c.title, c.mode, c.summary, c.summary_message_id)
)

# A safety bound on the history read for one turn. What the running summary does not cover
# yet is read (the context builder then folds what it drops into the summary), so this is
# only reached if summaries kept failing for hundreds of turns.
HISTORY_SCAN_CAP = 1000
_covered = messages.alias("covered")
_HISTORY = (
    select(m.id, m.role, m.content)
    .where(
        m.conversation_id == bindparam("cid"),
        m.seq < bindparam("before"),
        m.seq
        > func.coalesce(
            select(_covered.c.seq).where(_covered.c.id == bindparam("covered")).scalar_subquery(),
            0,
        ),
        m.status == "complete",
        m.superseded.is_(False),
    )
    .order_by(m.seq.desc())
    .limit(HISTORY_SCAN_CAP)
)

_FINISH_MESSAGE = (
    update(messages)
    .where(m.id == bindparam("mid"))
    .values(
        content=bindparam("content"),
        status=bindparam("status"),
        error_code=bindparam("error_code"),
        error_message=bindparam("error_message"),
        provider=bindparam("provider"),
        model=bindparam("model"),
        prompt_tokens=bindparam("prompt_tokens"),
        completion_tokens=bindparam("completion_tokens"),
        latency_ms=bindparam("latency_ms"),
        cost_usd=bindparam("cost_usd"),
        context_manifest=bindparam("context_manifest", type_=m.context_manifest.type),
        citations=bindparam("citations", type_=m.citations.type),
        completed_at=bindparam("completed_at"),
        source=bindparam("source"),
        faq_id=bindparam("faq_id"),
        support=bindparam("support", type_=m.support.type),
    )
)

_ADD_TOTALS = (
    update(conversations)
    .where(c.id == bindparam("cid"))
    .values(
        prompt_tokens=c.prompt_tokens + bindparam("p"),
        completion_tokens=c.completion_tokens + bindparam("ct"),
        cost_usd=c.cost_usd + bindparam("cost"),
        last_message_preview=bindparam("preview"),
        updated_at=bindparam("now"),
    )
)

_SAVE_SUMMARY = (
    update(conversations)
    .where(c.id == bindparam("cid"))
    .values(summary=bindparam("summary"), summary_message_id=bindparam("upto"))
)


@dataclass(slots=True)
class HistoryRow:
    """A prior message of the conversation, as the context builder needs it."""

    id: str
    role: str
    content: str


@dataclass(slots=True)
class Appended:
    """What appending a user message returned."""

    user_seq: int
    title: str
    mode: str
    summary: str | None
    summary_message_id: str | None
    history: list[HistoryRow]
    document_ids: list[str] = field(default_factory=list)


AppendResult = tuple[Appended, list[MessageRecord]] | None


class ScopeUnchecked(Exception):
    """A grounded conversation's documents must be checked before its question is stored."""

    def __init__(self, document_ids: list[str]) -> None:
        super().__init__("documents not checked")
        self.document_ids = document_ids


def message_row(
    conv_id: str, seq: int, role: str, content: str, status: str, now: datetime
) -> MessageRecord:
    """A new message's values (every column present, so rows batch in one INSERT)."""
    return MessageRecord(
        id=new_id(),
        conversation_id=conv_id,
        seq=seq,
        role=role,
        content=content,
        status=status,
        created_at=now,
        completed_at=now if status == "complete" else None,
    )


def _history(conn: Connection, conv_id: str, before: int, covered: str | None) -> list[HistoryRow]:
    """The complete messages before `before` that the running summary does not cover."""
    rows = conn.execute(_HISTORY, {"cid": conv_id, "before": before, "covered": covered})
    history = [HistoryRow(r[0], r[1], r[2]) for r in rows]
    history.reverse()
    return history


def insert_conversation(
    conn: Connection,
    values: dict[str, Any],
    rows: list[MessageRecord],
    document_ids: list[str],
) -> None:
    """Create a conversation with its first messages and its documents.

    Without documents, one statement on PostgreSQL (for `SqlRunner.run_single`).
    """
    if not document_ids and conn.dialect.name == "postgresql":
        params = {f"c_{col.name}": values[col.name] for col in c}
        conn.execute(_CREATE_WITH_PAIR, {**params, **_pair_params(rows, with_seq=True)})
        return
    conn.execute(_INSERT_CONVERSATION, values)
    conn.execute(_INSERT_MESSAGES, [r.values() for r in rows])
    if document_ids:
        attach_documents(conn, values["id"], document_ids)


def append_user_message(
    conn: Connection,
    conv_id: str,
    owner_id: str,
    text: str,
    now: datetime,
    make_rows: Any,
    new_scope: list[str] | None = None,
    scope_checked: bool = False,
) -> AppendResult:
    """Reserve two sequence numbers, load recent history, insert the user/assistant pair.

    `new_scope` replaces the conversation's documents. A grounded conversation whose
    documents were not checked raises `ScopeUnchecked` (the caller rolls back and checks).
    """
    row = conn.execute(
        _BUMP, {"cid": conv_id, "uid": owner_id, "preview": text[:PREVIEW_CHARS], "now": now}
    ).first()
    if row is None:
        return None
    next_seq, title, mode, summary, summary_mid = row
    document_ids: list[str] = []
    if new_scope is not None:
        attach_documents(conn, conv_id, new_scope)
        document_ids = new_scope
    elif mode == "grounded":
        document_ids = attached_document_ids(conn, conv_id)
    if mode == "grounded" and not scope_checked:
        raise ScopeUnchecked(document_ids)
    user_seq = next_seq - 2
    history = _history(conn, conv_id, user_seq, summary_mid)
    new_rows: list[MessageRecord] = make_rows(user_seq)
    conn.execute(_INSERT_MESSAGES, [r.values() for r in new_rows])
    appended = Appended(user_seq, title, mode, summary, summary_mid, history, document_ids)
    return appended, new_rows


def finish_message(conn: Connection, values: dict[str, Any], totals: dict[str, Any] | None) -> None:
    """Store an assistant message's outcome, and add its usage to the conversation.

    One statement on PostgreSQL (for `SqlRunner.run_single`), two on SQLite.
    """
    if totals is None:
        conn.execute(_FINISH_MESSAGE, values)
    elif conn.dialect.name == "postgresql":
        conn.execute(_FINISH_WITH_TOTALS, {**values, **totals})
    else:
        conn.execute(_FINISH_MESSAGE, values)
        conn.execute(_ADD_TOTALS, totals)


def save_summary(conn: Connection, conv_id: str, summary: str, upto_message_id: str) -> None:
    """Store the conversation's running summary."""
    conn.execute(_SAVE_SUMMARY, {"cid": conv_id, "summary": summary, "upto": upto_message_id})


_BUMP_ONE = (
    update(conversations)
    .where(c.id == bindparam("cid"), c.user_id == bindparam("uid"))
    .values(next_seq=c.next_seq + 1, message_count=c.message_count + 1, updated_at=bindparam("now"))
    .returning(c.next_seq, c.title, c.mode, c.summary, c.summary_message_id)
)


class RegenerateRefused(Exception):
    """Why a reply cannot be regenerated: `missing`, `not_latest` or `in_progress`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def regenerate(
    conn: Connection,
    conv_id: str,
    owner_id: str,
    message_id: str,
    now: datetime,
    prepare_row: Any = None,
) -> tuple[Appended, MessageRecord, MessageRecord] | None:
    """Supersede the latest assistant reply and add a new pending one to the same question.

    Returns None when the conversation is not the owner's; raises `RegenerateRefused`.
    """
    bumped = conn.execute(_BUMP_ONE, {"cid": conv_id, "uid": owner_id, "now": now}).first()
    if bumped is None:
        return None
    next_seq, title, mode, summary, summary_mid = bumped
    target = conn.execute(
        select(m.id, m.role, m.reply_to_id, m.status, m.superseded).where(
            m.id == message_id, m.conversation_id == conv_id
        )
    ).first()
    if target is None or target.role != "assistant" or target.reply_to_id is None:
        raise RegenerateRefused("missing")
    if target.status in ("pending", "streaming"):
        raise RegenerateRefused("in_progress")
    question = conn.execute(select(messages).where(m.id == target.reply_to_id)).first()
    latest_user = conn.execute(
        select(m.id)
        .where(m.conversation_id == conv_id, m.role == "user")
        .order_by(m.seq.desc())
        .limit(1)
    ).scalar()
    if question is None or question.id != latest_user or target.superseded:
        raise RegenerateRefused("not_latest")
    conn.execute(update(messages).where(m.id == message_id).values(superseded=True))
    row = message_row(conv_id, next_seq - 1, "assistant", "", "pending", now)
    row.reply_to_id = question.id
    if prepare_row is not None:
        prepare_row(row)
    conn.execute(_INSERT_MESSAGES, [row.values()])
    history = _history(conn, conv_id, question.seq, summary_mid)
    user = MessageRecord.from_row(question)
    document_ids = attached_document_ids(conn, conv_id) if mode == "grounded" else []
    appended = Appended(question.seq, title, mode, summary, summary_mid, history, document_ids)
    return appended, user, row


def mark_cancelled(
    conn: Connection, conv_id: str, owner_id: str, message_id: str, now: datetime
) -> str | None:
    """Cancel a pending reply not generating in this process; returns its status, None if absent."""
    row = conn.execute(
        select(m.status)
        .select_from(messages.join(conversations, c.id == m.conversation_id))
        .where(m.id == message_id, c.id == conv_id, c.user_id == owner_id, m.role == "assistant")
    ).first()
    if row is None:
        return None
    if row.status in ("pending", "streaming"):
        conn.execute(
            update(messages).where(m.id == message_id).values(status="cancelled", completed_at=now)
        )
        return "cancelled"
    return str(row.status)


def load_message(conn: Connection, conv_id: str, owner_id: str, message_id: str) -> Any:
    """One message of an owned conversation, or None."""
    return conn.execute(
        select(messages)
        .select_from(messages.join(conversations, c.id == m.conversation_id))
        .where(m.id == message_id, c.id == conv_id, c.user_id == owner_id)
    ).first()


def set_title(conn: Connection, conv_id: str, old: str, new: str) -> None:
    """Replace an automatic title, unless the title changed meanwhile (e.g. renamed)."""
    conn.execute(update(conversations).where(c.id == conv_id, c.title == old).values(title=new))


# -- PostgreSQL: the turn's writes as single statements ------------------------------------
_FIELDS = [f.name for f in dataclasses.fields(MessageRecord)]

# The reply's outcome and the conversation's totals.
_FINISH_WITH_TOTALS = _ADD_TOTALS.add_cte(_FINISH_MESSAGE.returning(m.id).cte("finished"))


def _pair_select(seq_of: Callable[[int], ColumnElement[int]], from_: Any = None) -> Any:
    """The two new messages as a SELECT of bind parameters `r0_<column>`, `r1_<column>`."""
    rows: list[Select[Any]] = []
    for i in (0, 1):
        row = select(
            *(
                seq_of(i).label("seq")
                if name == "seq"
                else bindparam(f"r{i}_{name}", type_=m[name].type)
                for name in _FIELDS
            )
        )
        rows.append(row if from_ is None else row.select_from(from_))
    return union_all(*rows)


_PAIR_KEYS = tuple((f"r{i}_{name}", i, name) for i in (0, 1) for name in _FIELDS)


def _pair_params(rows: list[MessageRecord], with_seq: bool) -> dict[str, Any]:
    return {key: getattr(rows[i], name) for key, i, name in _PAIR_KEYS if with_seq or name != "seq"}


# Reserve two sequence numbers, insert the pair numbered from them and read the history
# before them, in one statement. The history is read in the statement's snapshot: a send
# to the same conversation that committed while this one waited for its row lock is
# numbered before this one but not in its history (it was concurrent). Grounded
# conversations take the transaction (`append_user_message`): their documents come first.
_bump = _BUMP.where(c.mode != "grounded").cte("bump")
_recent = (
    select(m.id, m.role, m.content, m.seq)
    .where(
        m.conversation_id == bindparam("cid"),
        m.seq < _bump.c.next_seq - 2,
        m.seq
        > func.coalesce(
            select(_covered.c.seq)
            .where(_covered.c.id == _bump.c.summary_message_id)
            .scalar_subquery(),
            0,
        ),
        m.status == "complete",
        m.superseded.is_(False),
    )
    .order_by(m.seq.desc())
    .limit(HISTORY_SCAN_CAP)
    .subquery("recent")
)
_texts = ARRAY(String)
_history_arrays = select(
    *(
        func.array_agg(aggregate_order_by(col, _recent.c.seq), type_=_texts).label(name)
        for name, col in (
            ("ids", _recent.c.id),
            ("roles", _recent.c.role),
            ("texts", _recent.c.content),
        )
    )
).subquery("history")
_APPEND_PAIR = (
    select(
        _bump.c.next_seq,
        _bump.c.title,
        _bump.c.mode,
        _bump.c.summary,
        _bump.c.summary_message_id,
        _history_arrays,
    )
    .select_from(
        _bump.join(_history_arrays, true())  # one row each: no condition to join on
    )
    .add_cte(
        insert(messages)
        .from_select(
            _FIELDS,
            _pair_select(lambda i: _bump.c.next_seq - (2 - i), _bump),
            include_defaults=False,
        )
        .cte("pair")
    )
)

# A new conversation with its first two messages.
_CREATE_WITH_PAIR = (
    insert(messages)
    .from_select(
        _FIELDS,
        _pair_select(lambda i: bindparam(f"r{i}_seq", type_=Integer)),
        include_defaults=False,
    )
    .add_cte(
        insert(conversations)
        .values({col.name: bindparam(f"c_{col.name}", type_=col.type) for col in c})
        .returning(c.id)
        .cte("created")
    )
)


def append_pair(
    conn: Connection, conv_id: str, owner_id: str, text: str, now: datetime,
    rows: list[MessageRecord],
) -> Appended | None:  # fmt: skip
    """PostgreSQL, one statement: reserve two sequence numbers, insert `rows` with them, and
    read the history before them.

    The rows' `seq` is set from the reservation. None if the conversation is not the
    owner's or is grounded (`append_user_message` tells which).
    """
    params = {"cid": conv_id, "uid": owner_id, "preview": text[:PREVIEW_CHARS], "now": now}
    row = conn.execute(_APPEND_PAIR, {**params, **_pair_params(rows, with_seq=False)}).first()
    if row is None:
        return None
    next_seq, title, mode, summary, summary_mid, ids, roles, texts = row
    for i, message in enumerate(rows):
        message.seq = next_seq - 2 + i
    history = [HistoryRow(*r) for r in zip(ids or (), roles or (), texts or (), strict=True)]
    return Appended(next_seq - 2, title, mode, summary, summary_mid, history)
