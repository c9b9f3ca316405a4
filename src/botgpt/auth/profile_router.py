"""Routes for the caller's profile and consents, and an admin's change of a user's role."""

from __future__ import annotations

from fastapi import APIRouter, status

from botgpt.auth import profile
from botgpt.auth.schemas import (
    ConsentGrant,
    ConsentKind,
    ConsentPublic,
    RoleUpdate,
    UserPublic,
    UserUpdate,
)
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep
from botgpt.exceptions import PermissionDenied
from botgpt.openapi import errors_doc

router = APIRouter(prefix="/api/v1/users", tags=["auth"])


@router.patch("/me", responses=errors_doc(401, 409, 422))
async def update_me(
    body: UserUpdate, principal: CurrentPrincipal, db: SessionDep, c: ContainerDep
) -> UserPublic:
    """Change the caller's username, full name or display name."""
    user = await c.auth.get_user(db, principal.user_id)
    return await profile.user_public(db, await profile.update_profile(db, user, body))


@router.get("/me/consents", responses=errors_doc(401))
async def list_consents(principal: CurrentPrincipal, db: SessionDep) -> list[ConsentPublic]:
    """Every consent the caller gave or withdrew, newest first."""
    history = await profile.consent_history(db, principal.user_id)
    return [profile.consent_public(c) for c in history]


@router.post("/me/consents", status_code=status.HTTP_201_CREATED, responses=errors_doc(401, 422))
async def give_consent(
    body: ConsentGrant, principal: CurrentPrincipal, db: SessionDep
) -> ConsentPublic:
    """Consent to a version of the terms, the privacy policy or marketing."""
    return profile.consent_public(await profile.grant_consent(db, principal.user_id, body))


@router.delete(
    "/me/consents/{kind}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors_doc(401, 404, 422),
)
async def withdraw_consent(kind: ConsentKind, principal: CurrentPrincipal, db: SessionDep) -> None:
    """Withdraw the caller's consent of this kind (the record is kept, marked withdrawn)."""
    await profile.withdraw_consent(db, principal.user_id, kind)


@router.patch("/{user_id}/role", responses=errors_doc(401, 403, 404, 422))
async def set_role(
    user_id: str, body: RoleUpdate, principal: CurrentPrincipal, db: SessionDep, c: ContainerDep
) -> UserPublic:
    """Make a user a `user`, `admin` or `analyst` (admins only)."""
    if not principal.is_admin:
        raise PermissionDenied("Only admins may change roles.")
    user = await c.auth.get_user(db, user_id)
    updated = await profile.set_role(db, user, body.role)
    await c.auth.forget_user(user.id)  # cached API-key principals carry the old role
    return await profile.user_public(db, updated)
