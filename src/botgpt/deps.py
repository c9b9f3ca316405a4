"""FastAPI dependencies shared by routers: the container, DB sessions, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.auth.service import Principal
from botgpt.container import Container
from botgpt.exceptions import AuthenticationFailed


async def get_container(request: Request) -> Container:
    """The app's container."""
    container: Container = request.app.state.container
    return container


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for the route function (closed before a streamed body is sent)."""
    async with request.app.state.container.sessions() as session:
        yield session


async def release(db: AsyncSession) -> None:
    """End the session's transaction so no pooled connection is held during a slow wait.

    A session takes a connection at its first statement and keeps it until commit,
    rollback or close; a read left open would hold it while a model answers.
    """
    if db.in_transaction():
        await db.commit()


_bearer = HTTPBearer(auto_error=False, description="An access token or an API key (bgpt_...).")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


# Function scope: the session closes when the route function returns, so a streaming
# response (SSE) never keeps the request's connection while its body is generated.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_principal(
    request: Request,
    db: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Authenticate the caller from `Authorization: Bearer` or `X-API-Key`."""
    credential = bearer.credentials if bearer is not None else api_key
    if not credential:
        raise AuthenticationFailed("Authentication required: send a bearer token or an API key.")
    principal = await request.app.state.container.auth.authenticate(db, credential)
    await release(db)  # the lookups of a login token are reads: give the connection back now
    request.state.principal = principal
    return principal  # type: ignore[no-any-return]


async def limit_sign_in(request: Request) -> None:
    """Count a sign-in, registration or token refresh against the client address's limit."""
    limiter = request.app.state.container.limits.auth
    if limiter.enabled:
        await limiter.hit(request.client.host if request.client else "unknown")


ContainerDep = Annotated[Container, Depends(get_container)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
# Service keys act for one of their users by naming it (the replaced systems' style).
ActAs = Annotated[
    str | None, Query(max_length=200, description="Service keys only: the user to act for.")
]
