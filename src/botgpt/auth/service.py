"""Accounts: registration, login sessions, API keys, and who a request acts as."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.auth.models import ApiKey, RefreshToken, User
from botgpt.auth.profile import add_consents, check_username_free
from botgpt.auth.revocations import RevocationBus
from botgpt.auth.schemas import UserCreate
from botgpt.auth.security import (
    API_KEY_PREFIX,
    TokenCodec,
    digest,
    hash_password,
    new_api_key,
    new_refresh_token,
    verify_password,
)
from botgpt.exceptions import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from botgpt.ids import new_id, utcnow


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user, and whether the credential may act for other users."""

    user_id: str
    is_admin: bool
    is_service: bool
    kind: str  # "jwt" | "api_key"
    session_id: str | None = None
    role: str = "user"  # user | admin | analyst (reads analytics)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A fresh access token and refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int


class _TTLCache:
    """A tiny time-bounded cache; credentials are re-checked against the database after `ttl`."""

    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._data: dict[str, tuple[float, Principal | bool]] = {}

    def get(self, key: str) -> Principal | bool | None:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Principal | bool) -> None:
        if self.ttl <= 0:
            return
        if len(self._data) >= self.max_size:
            self._data.clear()
        self._data[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: str) -> None:
        self._data.pop(key, None)

    def drop_user(self, user_id: str) -> None:
        for key, (_, value) in list(self._data.items()):
            if isinstance(value, Principal) and value.user_id == user_id:
                del self._data[key]


async def find_user(db: AsyncSession, reference: str) -> User | None:
    """The user with this id, email (any case) or external id."""
    found = await db.execute(
        select(User).where(
            (User.id == reference)
            | (User.email == reference.lower())
            | (User.external_id == reference)
        )
    )
    return found.scalar()


class AuthService:
    """Credentials and principals; one instance per app, sessions passed per call."""

    def __init__(self, codec: TokenCodec, refresh_days: int, key_cache_seconds: float) -> None:
        self.codec = codec
        self.refresh_ttl = timedelta(days=refresh_days)
        self._keys = _TTLCache(key_cache_seconds)
        # Revocation of a login session must show quickly; a short TTL bounds the staleness
        # other processes see, and this process drops its entry at logout.
        self._sessions = _TTLCache(min(key_cache_seconds, 5.0))
        # With Redis, revocations are also broadcast to the other processes at once.
        self.revocations: RevocationBus | None = None

    # -- users -------------------------------------------------------------------------------
    async def register(self, db: AsyncSession, form: UserCreate) -> User:
        """Create a user with an argon2-hashed password, its profile and its consents."""
        if form.username:
            await check_username_free(db, form.username, None)
        user = User(
            id=new_id(),
            email=str(form.email).lower(),
            display_name=form.display_name,
            username=form.username,
            full_name=form.full_name,
            role="user",
            password_hash=await hash_password(form.password),
        )
        db.add(user)
        try:
            await db.flush()  # the user row first: consents refer to it
            add_consents(db, user.id, form.consents)
            await db.commit()
        except IntegrityError as e:
            await db.rollback()
            raise Conflict("An account with this email already exists.") from e
        return user

    async def get_user(self, db: AsyncSession, user_id: str) -> User:
        """Load a user by id."""
        user = await db.get(User, user_id)
        if user is None or not user.is_active:
            raise NotFound("User not found.")
        return user

    async def login(self, db: AsyncSession, email: str, password: str) -> TokenPair:
        """Check a password and open a login session."""
        user = (await db.execute(select(User).where(User.email == email.lower()))).scalar()
        if (
            user is None
            or user.password_hash is None
            or not user.is_active
            or not await verify_password(user.password_hash, password)
        ):
            raise AuthenticationFailed("Wrong email or password.")
        user.last_login_at = utcnow()
        return await self._issue(db, user.id, new_id(), user.role)

    async def _issue(
        self, db: AsyncSession, user_id: str, family_id: str, role: str = "user"
    ) -> TokenPair:
        token, token_hash = new_refresh_token()
        db.add(
            RefreshToken(
                user_id=user_id,
                family_id=family_id,
                token_hash=token_hash,
                expires_at=utcnow() + self.refresh_ttl,
            )
        )
        await db.commit()
        return TokenPair(
            access_token=self.codec.issue_access(user_id, family_id, role),
            refresh_token=token,
            expires_in=self.codec.access_ttl_seconds,
        )

    async def refresh(self, db: AsyncSession, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; reuse of a rotated token ends the whole session."""
        row = (
            await db.execute(
                select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
            )
        ).scalar()
        if row is None or row.expires_at < utcnow():
            raise AuthenticationFailed("The refresh token is invalid or expired.")
        if row.revoked_at is not None:
            # A revoked token presented again means it leaked: end the session for everyone.
            await self._revoke_family(db, row.family_id)
            raise AuthenticationFailed("The refresh token was already used; please log in again.")
        row.revoked_at = utcnow()
        role = (await db.execute(select(User.role).where(User.id == row.user_id))).scalar()
        return await self._issue(db, row.user_id, row.family_id, role or "user")

    async def logout(
        self, db: AsyncSession, principal: Principal, refresh_token: str | None
    ) -> None:
        """End the caller's login session: its refresh tokens and access tokens stop working."""
        family = principal.session_id
        if family is None and refresh_token:
            row = (
                await db.execute(
                    select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
                )
            ).scalar()
            if row is not None and row.user_id == principal.user_id:
                family = row.family_id
        if family is not None:
            await self._revoke_family(db, family)

    async def _revoke_family(self, db: AsyncSession, family_id: str) -> None:
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await db.commit()
        await self._revoked("session", family_id)

    async def forget_user(self, user_id: str, session_ids: Iterable[str] = ()) -> None:
        """Drop the cached credentials of a deleted user (everywhere) so they fail at once."""
        await self._revoked("user", user_id)
        for session_id in session_ids:
            await self._revoked("session", session_id)

    async def _revoked(self, kind: str, ident: str) -> None:
        self.apply_revocation(kind, ident)
        if self.revocations is not None:  # other processes cache credentials too
            await self.revocations.revoke(kind, ident)

    def apply_revocation(self, kind: str, ident: str) -> None:
        """Forget a revoked credential here: a "key" hash, a "session" id or a "user" id."""
        if kind == "key":
            self._keys.drop(ident)
        elif kind == "session":
            self._sessions.drop(ident)
        elif kind == "user":
            self._keys.drop_user(ident)
            self._sessions.drop_user(ident)

    # -- credentials -> principal --------------------------------------------------------------
    async def authenticate(self, db: AsyncSession, credential: str) -> Principal:
        """Resolve a bearer credential (API key or access token) to a principal."""
        if credential.startswith(API_KEY_PREFIX):
            return await self._authenticate_key(db, credential)
        claims = self.codec.verify_access(credential)
        # The session's principal is cached like its liveness (same short TTL, dropped at
        # logout and erasure): a streaming client opening reply after reply must not pay
        # database round trips before each reply starts.
        cached = self._sessions.get(claims.session_id)
        if isinstance(cached, Principal):
            if cached.user_id == claims.user_id:
                return cached
            cached = None
        alive = cached is not False
        if cached is None:
            found = (
                await db.execute(
                    select(RefreshToken.id)
                    .where(
                        RefreshToken.family_id == claims.session_id,
                        RefreshToken.revoked_at.is_(None),
                    )
                    .limit(1)
                )
            ).first()
            alive = found is not None
            if not alive:
                self._sessions.put(claims.session_id, False)
        if not alive:
            raise AuthenticationFailed("The session has ended; please log in again.")
        user = await db.get(User, claims.user_id)
        if user is None or not user.is_active:
            raise AuthenticationFailed("The account is disabled.")
        principal = Principal(user.id, user.is_admin, False, "jwt", claims.session_id, user.role)
        self._sessions.put(claims.session_id, principal)
        return principal

    async def _authenticate_key(self, db: AsyncSession, key: str) -> Principal:
        key_hash = digest(key)
        cached = self._keys.get(key_hash)
        if isinstance(cached, Principal):
            return cached
        row = (
            await db.execute(
                select(ApiKey.id, ApiKey.is_service, User.id, User.is_admin, User.role)
                .join(User, User.id == ApiKey.user_id)
                .where(
                    ApiKey.key_hash == key_hash,
                    ApiKey.revoked_at.is_(None),
                    User.is_active.is_(True),
                )
            )
        ).first()
        if row is None:
            raise AuthenticationFailed("The API key is invalid or revoked.")
        key_id, is_service, user_id, is_admin, role = row
        await db.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
        await db.commit()
        principal = Principal(
            user_id, is_admin, bool(is_service and is_admin), "api_key", role=role or "user"
        )
        self._keys.put(key_hash, principal)
        return principal

    async def acting_user_of(
        self,
        db: AsyncSession,
        principal: Principal,
        query_user: str | None,
        body_user: str | None,
    ) -> str:
        """`acting_user` for routes that take `user_id` in the query string or the body."""
        if query_user and body_user and query_user != body_user:
            raise InvalidInput("`user_id` differs between the query string and the request body.")
        return await self.acting_user(db, principal, query_user or body_user)

    async def acting_user(self, db: AsyncSession, principal: Principal, user_id: str | None) -> str:
        """The user a request acts for: a service key may name any user; others act as themselves.

        A service key naming an unknown `user_id` provisions that external user, as the
        replaced systems' clients send their own user ids.
        """
        if user_id is None or user_id == principal.user_id:
            return principal.user_id
        if not principal.is_service:
            raise PermissionDenied("Only a service API key may act for another user.")
        found = (
            await db.execute(
                select(User.id).where((User.id == user_id) | (User.external_id == user_id))
            )
        ).scalar()
        if found is not None:
            return str(found)
        user = User(id=new_id(), external_id=user_id)
        db.add(user)
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            found = (await db.execute(select(User.id).where(User.external_id == user_id))).scalar()
            if found is None:
                raise
            return str(found)
        return user.id

    # -- API keys ------------------------------------------------------------------------------
    async def create_api_key(
        self, db: AsyncSession, principal: Principal, name: str, service: bool
    ) -> tuple[ApiKey, str]:
        """Create a key for the caller; returns the row and the plaintext, shown once."""
        if service and not principal.is_admin:
            raise PermissionDenied("Only an admin may create a service key.")
        plaintext, prefix, key_hash = new_api_key()
        row = ApiKey(
            user_id=principal.user_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            is_service=service,
        )
        db.add(row)
        await db.commit()
        return row, plaintext

    async def list_api_keys(
        self, db: AsyncSession, principal: Principal, offset: int, limit: int
    ) -> tuple[list[ApiKey], int]:
        """The caller's keys, newest first, with the total."""
        where = ApiKey.user_id == principal.user_id
        total = (await db.execute(select(func.count()).where(where))).scalar_one()
        rows = (
            await db.execute(
                select(ApiKey)
                .where(where)
                .order_by(ApiKey.created_at.desc())
                .offset(offset)
                .limit(limit)
            )
        ).scalars()
        return list(rows), int(total)

    async def revoke_api_key(self, db: AsyncSession, principal: Principal, key_id: str) -> None:
        """Revoke one of the caller's keys."""
        row = await db.get(ApiKey, key_id)
        if row is None or row.user_id != principal.user_id:
            raise NotFound("API key not found.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await db.commit()
        await self._revoked("key", row.key_hash)

    async def ensure_admin(self, db: AsyncSession, email: str) -> str | None:
        """Create the first admin with a service key if there is no admin; return the key."""
        exists = (await db.execute(select(User.id).where(User.is_admin.is_(True)).limit(1))).first()
        if exists is not None:
            return None
        admin = User(
            id=new_id(), email=email, display_name="Administrator", is_admin=True, role="admin"
        )
        db.add(admin)
        await db.flush()
        plaintext, prefix, key_hash = new_api_key()
        db.add(
            ApiKey(
                user_id=admin.id,
                name="bootstrap admin key",
                prefix=prefix,
                key_hash=key_hash,
                is_service=True,
            )
        )
        await db.commit()
        return plaintext
