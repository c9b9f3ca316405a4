"""Auth primitives: password hashing (argon2), JWT access tokens, API key material."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from botgpt.exceptions import AuthenticationFailed
from botgpt.ids import utcnow

API_KEY_PREFIX = "bgpt_"
_hasher = PasswordHasher()
_ALGORITHM = "HS256"


async def hash_password(password: str) -> str:
    """Hash a password with argon2 off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against its argon2 hash off the event loop."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def new_api_key() -> tuple[str, str, str]:
    """A fresh API key: (plaintext shown once, display prefix, sha256 hex stored)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    # Keys are 256 random bits, so a fast hash is safe to store and to look up by.
    return key, key[:12], digest(key)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says."""

    user_id: str
    session_id: str
    expires_at: datetime


class TokenCodec:
    """Issues and verifies signed access tokens with one secret."""

    def __init__(self, secret: str, access_minutes: int) -> None:
        self._secret = secret
        self._ttl = timedelta(minutes=access_minutes)

    @property
    def access_ttl_seconds(self) -> int:
        """Lifetime of an access token in seconds."""
        return int(self._ttl.total_seconds())

    def issue_access(self, user_id: str, session_id: str, role: str = "user") -> str:
        """Sign an access token for a user's login session (the role is informative: every
        request re-reads the account, so a changed role applies before the token expires)."""
        now = utcnow()
        claims: dict[str, Any] = {
            "sub": user_id,
            "sid": session_id,
            "role": role,
            "typ": "access",
            "iat": now,
            "exp": now + self._ttl,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify_access(self, token: str) -> AccessClaims:
        """Decode an access token, refusing expired, tampered or foreign tokens."""
        try:
            data = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": ["exp", "sub", "sid"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise AuthenticationFailed("The access token has expired.") from e
        except jwt.PyJWTError as e:
            raise AuthenticationFailed("The access token is invalid.") from e
        if data.get("typ") != "access":
            raise AuthenticationFailed("The access token is invalid.")
        return AccessClaims(
            user_id=str(data["sub"]),
            session_id=str(data["sid"]),
            expires_at=datetime.fromtimestamp(int(data["exp"]), tz=utcnow().tzinfo),
        )


def new_refresh_token() -> tuple[str, str]:
    """An opaque refresh token: (plaintext for the client, sha256 hex stored)."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(secret: str) -> str:
    """SHA-256 hex of a random secret (API keys, refresh tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()
