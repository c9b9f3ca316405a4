"""Request and response shapes of the auth API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class UserCreate(BaseModel):
    """Registration form."""

    email: EmailStr
    password: str = Field(min_length=8, max_length=256)
    display_name: str | None = Field(default=None, max_length=200)


class LoginRequest(BaseModel):
    """Email and password."""

    email: EmailStr
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    """A refresh token to rotate."""

    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    """Optionally the refresh token of the session to end."""

    refresh_token: str | None = Field(default=None, max_length=200)


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
    is_admin: bool
    created_at: datetime


class ApiKeyCreate(BaseModel):
    """A new API key's name, and whether it may act for other users (admins only)."""

    name: str = Field(min_length=1, max_length=100)
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
