"""Routes for a user's personal data: export it all, or erase the account."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import StreamingResponse

from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.documents.router import attachment
from botgpt.documents.service import DocumentService
from botgpt.openapi import errors_doc
from botgpt.privacy import service
from botgpt.privacy.schemas import PersonalDataExport

router = APIRouter(prefix="/api/v1/users/me", tags=["privacy"])


@router.get(
    "/export",
    response_model=None,
    responses={
        200: {"model": PersonalDataExport, "description": "A JSON file of everything stored"},
        **errors_doc(401, 403, 404, 422),
    },
)
async def export_my_data(
    principal: CurrentPrincipal, db: SessionDep, c: ContainerDep, user_id: ActAs = None
) -> StreamingResponse:
    """Download all of the caller's personal data as one JSON file."""
    subject = await service.find_subject(db, principal, user_id)
    head = await service.export_head(db, principal.user_id, subject)
    # The rest streams from short sessions of its own: give this connection back now.
    await db.commit()
    return StreamingResponse(
        service.export_body(c.sessions, subject.id, head),
        media_type="application/json",
        headers={
            "Content-Disposition": attachment(f"botgpt-export-{subject.id}.json"),
            "Cache-Control": "private, no-store",
        },
    )


@router.delete(
    "", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404, 409, 422)
)
async def erase_me(
    principal: CurrentPrincipal, db: SessionDep, c: ContainerDep, user_id: ActAs = None
) -> Response:
    """Erase the caller's account with its conversations, documents and credentials."""
    subject = await service.find_subject(db, principal, user_id)
    documents: DocumentService = c.docs.documents
    await service.erase(db, c.auth, documents, principal.user_id, subject, [c.chat.answers])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
