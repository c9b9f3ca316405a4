"""Sign-in for the dashboard: the refresh token lives in an httpOnly cookie, never in script.

The page keeps only the short-lived access token in memory; on load it asks
`web/refresh` for a new one, which the browser sends the cookie to (SameSite=Strict and
a path limited to these routes, so no other site or route ever carries it).
"""

from __future__ import annotations

from fastapi import APIRouter, Cookie, Depends, Request, Response, status
from pydantic import BaseModel

from botgpt.auth.schemas import LoginRequest
from botgpt.auth.service import TokenPair
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep, limit_sign_in
from botgpt.exceptions import AuthenticationFailed
from botgpt.openapi import errors_doc

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
COOKIE = "botgpt_refresh"
COOKIE_PATH = "/api/v1/auth/web"
SIGN_IN_LIMITED = [Depends(limit_sign_in)]


class WebToken(BaseModel):
    """An access token for the page's memory; the refresh token went into the cookie."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


def _answer(request: Request, response: Response, pair: TokenPair) -> WebToken:
    response.set_cookie(
        COOKIE,
        pair.refresh_token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
        max_age=30 * 24 * 3600,
    )
    response.headers["Cache-Control"] = "no-store"
    return WebToken(access_token=pair.access_token, expires_in=pair.expires_in)


@router.post("/web/login", responses=errors_doc(401, 422, 429), dependencies=SIGN_IN_LIMITED)
async def web_login(
    body: LoginRequest, request: Request, response: Response, db: SessionDep, c: ContainerDep
) -> WebToken:
    """Sign the dashboard in: the refresh token is set as an httpOnly SameSite=Strict cookie."""
    return _answer(request, response, await c.auth.login(db, body.email, body.password))


@router.post("/web/refresh", responses=errors_doc(401, 429), dependencies=SIGN_IN_LIMITED)
async def web_refresh(
    request: Request,
    response: Response,
    db: SessionDep,
    c: ContainerDep,
    botgpt_refresh: str | None = Cookie(default=None, max_length=200),
) -> WebToken:
    """A new access token from the sign-in cookie (which is rotated)."""
    if not botgpt_refresh:
        raise AuthenticationFailed("Not signed in.")
    return _answer(request, response, await c.auth.refresh(db, botgpt_refresh))


@router.post("/web/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401))
async def web_logout(
    principal: CurrentPrincipal,
    response: Response,
    db: SessionDep,
    c: ContainerDep,
    botgpt_refresh: str | None = Cookie(default=None, max_length=200),
) -> None:
    """Sign the dashboard out: the session's tokens are revoked and the cookie cleared."""
    await c.auth.logout(db, principal, botgpt_refresh)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
