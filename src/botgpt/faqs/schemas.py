"""Request and response shapes of the FAQs API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from botgpt.text import Text

MAX_TAGS = 20

Question = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=1000),
    Field(description="The question, 3..1,000 characters (surrounding whitespace removed)."),
]
Answer = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000),
    Field(description="The answer, 1..10,000 characters."),
]
Category = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Tag = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
LanguageCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"),
    Field(description='A language code such as "en" or "pt-BR".'),
]
Status = Literal["active", "draft", "archived"]


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[
    list[Tag],
    Field(max_length=MAX_TAGS, description="At most 20 tags of 1..50 characters."),
    AfterValidator(_unique),
]


class FaqCreate(BaseModel):
    """A new FAQ; its question is embedded for search."""

    question: Question
    answer: Answer
    category: Category | None = None
    tags: Tags = Field(default_factory=list)
    language: LanguageCode = "en"
    status: Status = "active"
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )


# Fields an update may set but never to null.
_REQUIRED = ("question", "answer", "tags", "language", "status")


class FaqUpdate(BaseModel):
    """A partial update: only the fields sent change; a new question is re-embedded."""

    question: Question | None = None
    answer: Answer | None = None
    category: Category | None = Field(default=None, description="null clears the category.")
    tags: Tags | None = None
    language: LanguageCode | None = None
    status: Status | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> FaqUpdate:
        nulls = [f for f in _REQUIRED if f in self.model_fields_set and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class FaqPublic(BaseModel):
    """An FAQ as the API shows it; `hits` counts the questions it answered."""

    id: str
    user_id: str
    question: str
    answer: str
    category: str | None
    tags: list[str]
    language: str
    status: str
    hits: int
    embedding_model: str
    created_at: datetime
    updated_at: datetime


class FaqList(BaseModel):
    """A page of FAQs, newest first."""

    items: list[FaqPublic]
    total: int
    page: int
    limit: int
    pages: int


class FaqMatch(FaqPublic):
    """An FAQ found by search, with its cosine similarity to the query."""

    score: float


class FaqSearchResponse(BaseModel):
    """Active FAQs most similar to the query, best first."""

    query: str
    results: list[FaqMatch]
