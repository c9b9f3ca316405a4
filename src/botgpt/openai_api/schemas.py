"""Request and response bodies of the OpenAI-compatible API, shaped as OpenAI's own."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from botgpt.openapi import errors_doc
from botgpt.text import Text

# -- requests -----------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content in the list form; only `text` parts are supported."""

    model_config = ConfigDict(extra="allow")

    type: Text = Field(max_length=64)
    text: Text | None = None

    @model_validator(mode="after")
    def _text_only(self) -> ContentPart:
        if self.type != "text":
            raise ValueError(f"Content parts of type '{self.type}' are not supported; use 'text'.")
        if self.text is None:
            raise ValueError("A 'text' content part needs a 'text' string.")
        return self


class ChatMessageIn(BaseModel):
    """One prompt message: `content` is a string or a list of text parts."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _content_required(self) -> ChatMessageIn:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"A '{self.role}' message needs 'content'.")
        return self

    def text(self) -> str:
        """The message's content as plain text (list parts joined by newlines)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content)


class StreamOptions(BaseModel):
    """Options of a streamed completion."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionCreate(BaseModel):
    """A chat completion request; fields this server does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: Text = Field(min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: Text | None = Field(default=None, max_length=256)
    n: int | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("Only n=1 is supported.")
        return value

    @property
    def include_usage(self) -> bool:
        """Whether a streamed reply ends with a usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def reply_limit(self) -> int | None:
        """The requested reply length in tokens (`max_completion_tokens` wins)."""
        return self.max_completion_tokens or self.max_tokens


# -- responses ----------------------------------------------------------------------------------


class CompletionUsage(BaseModel):
    """Token counts of one completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    """The reply message of a non-streamed completion."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    """One alternative of a non-streamed completion (always exactly one here)."""

    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    """A whole `chat.completion` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    """What a stream chunk adds to the reply; unset fields are left out, as OpenAI does."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class ChunkChoice(BaseModel):
    """The one choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One `chat.completion.chunk` event of a streamed completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class Model(BaseModel):
    """One model that `/v1/chat/completions` accepts."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """The models served."""

    object: Literal["list"] = "list"
    data: list[Model]


# -- errors -------------------------------------------------------------------------------------


class OpenAIErrorBody(BaseModel):
    """The error object OpenAI clients parse."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """OpenAI's error envelope, used by every 4xx/5xx of this API."""

    error: OpenAIErrorBody


def openai_errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses with OpenAI's error envelope."""
    return {
        code: {**entry, "model": OpenAIErrorResponse} for code, entry in errors_doc(*codes).items()
    }
