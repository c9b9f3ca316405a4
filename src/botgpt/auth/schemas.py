"""Request and response shapes of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from botgpt.text import Text

ConsentKind = Literal["terms", "privacy", "marketing"]
Role = Literal["user", "admin", "analyst"]
Username = Annotated[
    Text,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,99}$"),
    Field(description="3..100 letters, digits, '_', '.', '-'; unique (case-insensitive)."),
]
FullName = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ConsentGrant(BaseModel):
    """Consent to one version of a text (terms of service, privacy policy, marketing)."""

    model_config = ConfigDict(extra="forbid")

    kind: ConsentKind
    version: Text = Field(min_length=1, max_length=50, description='e.g. "2024-01" or "v3".')


class ConsentPublic(ConsentGrant):
    """A consent record; `withdrawn_at` is set once it was withdrawn."""

    id: str
    granted_at: datetime
    withdrawn_at: datetime | None


class UserCreate(BaseModel):
    """Registration form; fields it does not know are refused, not dropped."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: Text = Field(min_length=8, max_length=256)
    display_name: Text | None = Field(default=None, max_length=200)
    username: Username | None = None
    full_name: FullName | None = None
    consents: list[ConsentGrant] = Field(
        default_factory=list, max_length=3, description="At most one per kind."
    )


class UserUpdate(BaseModel):
    """The caller's own profile fields; only those sent change (null clears)."""

    model_config = ConfigDict(extra="forbid")

    username: Username | None = None
    full_name: FullName | None = None
    display_name: Text | None = Field(default=None, max_length=200)


class RoleUpdate(BaseModel):
    """An admin's change of a user's role."""

    model_config = ConfigDict(extra="forbid")

    role: Role


class LoginRequest(BaseModel):
    """Email and password."""

    email: EmailStr
    password: Text = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    """A refresh token to rotate."""

    refresh_token: Text = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    """Optionally the refresh token of the session to end."""

    refresh_token: Text | None = Field(default=None, max_length=200)


class TokenPublic(BaseModel):
    """Access and refresh tokens."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class UserPublic(BaseModel):
    """A user as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str | None
    external_id: str | None = None
    display_name: str | None
    username: str | None = None
    full_name: str | None = None
    role: str = "user"
    is_admin: bool
    created_at: datetime
    last_login_at: datetime | None = None
    consents: list[ConsentPublic] = Field(
        default_factory=list, description="Consents in force (not withdrawn)."
    )


class ApiKeyCreate(BaseModel):
    """A new API key's name, and whether it may act for other users (admins only)."""

    name: Text = Field(min_length=1, max_length=100)
    service: bool = False


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    is_service: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    """A new API key with its secret, shown this once."""

    key: str


class ApiKeyList(BaseModel):
    """A page of API keys."""

    items: list[ApiKeyPublic]
    total: int
    page: int
    limit: int
