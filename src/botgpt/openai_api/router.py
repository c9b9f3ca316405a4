"""Routes of the OpenAI-compatible API; every failure is answered in OpenAI's error envelope."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from botgpt.auth.service import Principal
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep
from botgpt.openai_api.embeddings import EmbeddingCreate, EmbeddingList, create_embeddings
from botgpt.openai_api.schemas import ChatCompletion, ChatCompletionCreate, Model, ModelList
from botgpt.openai_api.schemas import openai_errors_doc as errors_doc
from botgpt.openai_api.service import (
    CompletionStream,
    OpenAICompatService,
    OpenAIError,
    to_openai_error,
)
from botgpt.openapi import SSE_EVENT_SCHEMA


def error_response(error: OpenAIError) -> JSONResponse:
    """The JSON response of an `OpenAIError`."""
    return JSONResponse(
        error.envelope().model_dump(), status_code=error.status, headers=error.headers
    )


class OpenAIRoute(APIRoute):
    """A route whose errors (auth, validation, provider, HTTP) use OpenAI's error envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The standard handler, with failures translated instead of reaching the app handlers."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                return error_response(to_openai_error(error))

        return handle


class EventStreamResponse(StreamingResponse):
    """A completion's server-sent events; the provider stream is closed however it ends."""

    media_type = "text/event-stream"

    def __init__(self, stream: CompletionStream) -> None:
        super().__init__(
            stream.events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the events; on completion, error or client disconnect, close the provider."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.stream.aclose()


router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIRoute)


async def authenticated(principal: CurrentPrincipal, db: SessionDep) -> Principal:
    """The caller; the database connection is released before the (slow) model call."""
    await db.close()
    return principal


async def get_service(c: ContainerDep) -> OpenAICompatService:
    """The OpenAI-compatible service over the configured provider (with retries)."""
    return OpenAICompatService(c.llm, c.settings, c.docs.embedder.name)


Caller = Annotated[Principal, Depends(authenticated)]
ServiceDep = Annotated[OpenAICompatService, Depends(get_service)]

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `chat.completion` object, or with `stream: true` a `text/event-stream` "
        "of `chat.completion.chunk` events ending with `data: [DONE]`.",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={**_STREAM_DOC, **errors_doc(400, 401, 404, 422, 429, 502, 503, 504)},
)
async def create_chat_completion(
    body: ChatCompletionCreate, caller: Caller, service: ServiceDep, c: ContainerDep
) -> ChatCompletion | Response:
    """Create a chat completion (OpenAI-compatible), streamed as SSE when `stream` is true."""
    prepared = service.prepare(body)
    said = "\n\n".join(m.text() for m in body.messages if m.role == "user")
    # The chat turn's own admission: the same rate limit and moderation as every turn.
    await c.chat.admission.admit(caller.user_id, said)
    if body.stream:
        return EventStreamResponse(await service.start_stream(prepared))
    return await service.complete(prepared)


@router.get("/models", responses=errors_doc(401))
async def list_models(_caller: Caller, service: ServiceDep) -> ModelList:
    """The models served (OpenAI-compatible)."""
    return service.list_models()


@router.get("/models/{model_id:path}", responses=errors_doc(401, 404))
async def get_model(model_id: str, _caller: Caller, service: ServiceDep) -> Model:
    """One served model (OpenAI-compatible)."""
    if model_id == service.embedding_model:
        return service.list_models().data[-1]
    served = service.resolve_model(model_id)
    return next(m for m in service.list_models().data if m.id == served)


@router.post("/embeddings", responses=errors_doc(400, 401, 404, 503))
async def create_embedding(
    body: EmbeddingCreate, _caller: Caller, c: ContainerDep
) -> EmbeddingList:
    """Embed text with the server's embedding model (OpenAI-compatible)."""
    return await create_embeddings(c.docs.embedder, body)
