"""Seed 004's account data: profile fields, roles and consent records.

Consents are kept as history: withdrawing sets `withdrawn_at` on the record in force and
granting again adds a new one, so what a user agreed to, and when, can always be shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.auth.models import Consent, User
from botgpt.auth.schemas import ConsentGrant, ConsentPublic, UserPublic, UserUpdate
from botgpt.exceptions import Conflict, NotFound
from botgpt.ids import utcnow


async def check_username_free(db: AsyncSession, username: str, user_id: str | None) -> None:
    """Refuse a username another account has (case-insensitive)."""
    query = select(User.id).where(func.lower(User.username) == username.lower())
    if user_id is not None:
        query = query.where(User.id != user_id)
    if (await db.execute(query.limit(1))).first() is not None:
        raise Conflict("This username is taken.", details={"field": "username"})


def add_consents(db: AsyncSession, user_id: str, grants: Sequence[ConsentGrant]) -> None:
    """Record new consents (at most one per kind is kept from `grants`)."""
    for kind, grant in {g.kind: g for g in grants}.items():
        db.add(Consent(user_id=user_id, kind=kind, version=grant.version, granted_at=utcnow()))


async def consents_in_force(db: AsyncSession, user_id: str) -> list[Consent]:
    """The user's consents that are not withdrawn, by kind."""
    rows = await db.execute(
        select(Consent)
        .where(Consent.user_id == user_id, Consent.withdrawn_at.is_(None))
        .order_by(Consent.kind, Consent.granted_at)
    )
    return list(rows.scalars())


async def consent_history(db: AsyncSession, user_id: str) -> list[Consent]:
    """Every consent record of the user, newest first."""
    rows = await db.execute(
        select(Consent)
        .where(Consent.user_id == user_id)
        .order_by(Consent.granted_at.desc(), Consent.id)
    )
    return list(rows.scalars())


async def grant_consent(db: AsyncSession, user_id: str, grant: ConsentGrant) -> Consent:
    """Give consent to a version; a consent of the same kind in force is superseded."""
    now = utcnow()
    await _withdraw(db, user_id, grant.kind, now)
    consent = Consent(user_id=user_id, kind=grant.kind, version=grant.version, granted_at=now)
    db.add(consent)
    await db.commit()
    return consent


async def withdraw_consent(db: AsyncSession, user_id: str, kind: str) -> None:
    """Withdraw the consent of this kind in force (404 when there is none)."""
    if not await _withdraw(db, user_id, kind, utcnow()):
        raise NotFound(f"No {kind} consent in force.")
    await db.commit()


async def _withdraw(db: AsyncSession, user_id: str, kind: str, when: object) -> bool:
    result = await db.execute(
        update(Consent)
        .where(Consent.user_id == user_id, Consent.kind == kind, Consent.withdrawn_at.is_(None))
        .values(withdrawn_at=when)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def update_profile(db: AsyncSession, user: User, body: UserUpdate) -> User:
    """Apply the profile fields sent (null clears a field)."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("username"):
        await check_username_free(db, changes["username"], user.id)
    for field, value in changes.items():
        setattr(user, field, value)
    try:
        await db.commit()
    except IntegrityError as exc:  # a concurrent claim of the same username
        await db.rollback()
        raise Conflict("This username is taken.", details={"field": "username"}) from exc
    return user


async def set_role(db: AsyncSession, user: User, role: str) -> User:
    """Make the user a user, admin or analyst (`is_admin` follows the role).

    The last active admin cannot be demoted: nobody could manage the instance afterwards.
    """
    if user.is_admin and role != "admin":
        others = await db.execute(
            select(User.id)
            .where(User.is_admin.is_(True), User.is_active.is_(True), User.id != user.id)
            .limit(1)
        )
        if others.first() is None:
            raise Conflict("The last admin cannot be demoted; make another user admin first.")
    user.role = role
    user.is_admin = role == "admin"
    await db.commit()
    return user


async def user_public(db: AsyncSession, user: User) -> UserPublic:
    """The API view of a user, with the consents in force."""
    consents = await consents_in_force(db, user.id)
    return UserPublic(
        id=user.id,
        email=user.email,
        external_id=user.external_id,
        display_name=user.display_name,
        username=user.username,
        full_name=user.full_name,
        role="admin" if user.is_admin else (user.role or "user"),
        is_admin=user.is_admin,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        consents=[consent_public(c) for c in consents],
    )


def consent_public(consent: Consent) -> ConsentPublic:
    """The API view of a consent record."""
    return ConsentPublic(
        id=consent.id,
        kind=consent.kind,
        version=consent.version,
        granted_at=consent.granted_at,
        withdrawn_at=consent.withdrawn_at,
    )
