"""Routes for registration, login sessions, the current user and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from botgpt.auth.profile import user_public
from botgpt.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPublic,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    TokenPublic,
    UserCreate,
    UserPublic,
)
from botgpt.auth.service import TokenPair
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep, limit_sign_in
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

router = APIRouter(prefix="/api/v1", tags=["auth"])
# Guessing passwords or flooding sign-ups is throttled per client address.
SIGN_IN_LIMITED = [Depends(limit_sign_in)]


def _tokens(pair: TokenPair) -> TokenPublic:
    return TokenPublic(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    responses=errors_doc(409, 422, 429),
    dependencies=SIGN_IN_LIMITED,
)
async def register(body: UserCreate, db: SessionDep, c: ContainerDep) -> UserPublic:
    """Create an account with email and password (and optionally profile and consents)."""
    return await user_public(db, await c.auth.register(db, body))


@router.post("/auth/login", responses=errors_doc(401, 422, 429), dependencies=SIGN_IN_LIMITED)
async def login(body: LoginRequest, db: SessionDep, c: ContainerDep) -> TokenPublic:
    """Exchange email and password for an access token and a refresh token."""
    return _tokens(await c.auth.login(db, body.email, body.password))


@router.post("/auth/refresh", responses=errors_doc(401, 422, 429), dependencies=SIGN_IN_LIMITED)
async def refresh(body: RefreshRequest, db: SessionDep, c: ContainerDep) -> TokenPublic:
    """Rotate a refresh token: the old one stops working."""
    return _tokens(await c.auth.refresh(db, body.refresh_token))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 422))
async def logout(
    principal: CurrentPrincipal, db: SessionDep, c: ContainerDep, body: LogoutRequest | None = None
) -> None:
    """End the current login session; its access and refresh tokens are revoked."""
    await c.auth.logout(db, principal, body.refresh_token if body else None)


@router.get("/users/me", responses=errors_doc(401))
async def me(principal: CurrentPrincipal, db: SessionDep, c: ContainerDep) -> UserPublic:
    """The authenticated user, with role, profile and the consents in force."""
    return await user_public(db, await c.auth.get_user(db, principal.user_id))


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, responses=errors_doc(401, 403, 422))
async def create_api_key(
    body: ApiKeyCreate, principal: CurrentPrincipal, db: SessionDep, c: ContainerDep
) -> ApiKeyCreated:
    """Create an API key; its secret is shown only in this response."""
    row, plaintext = await c.auth.create_api_key(db, principal, body.name, body.service)
    return ApiKeyCreated(**ApiKeyPublic.model_validate(row).model_dump(), key=plaintext)


@router.get("/api-keys", responses=errors_doc(401, 422))
async def list_api_keys(
    principal: CurrentPrincipal, db: SessionDep, c: ContainerDep, page: PageDep
) -> ApiKeyList:
    """The caller's API keys by prefix, newest first."""
    rows, total = await c.auth.list_api_keys(db, principal, page.offset, page.limit)
    return ApiKeyList(
        items=[ApiKeyPublic.model_validate(r) for r in rows],
        total=total,
        page=page.page,
        limit=page.limit,
    )


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 404)
)
async def revoke_api_key(
    key_id: str, principal: CurrentPrincipal, db: SessionDep, c: ContainerDep
) -> None:
    """Revoke one of the caller's API keys."""
    await c.auth.revoke_api_key(db, principal, key_id)
