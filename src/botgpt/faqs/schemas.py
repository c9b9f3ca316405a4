"""Request and response shapes of the FAQs API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    model_validator,
)

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
    Text,
    StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"),
    Field(description='A language code such as "en" or "pt-BR".'),
]


def _published_is_active(value: object) -> object:
    # Seed 004 calls a live FAQ "published"; it is stored and shown as "active".
    return "active" if value == "published" else value


Status = Annotated[
    Literal["active", "draft", "archived"],
    BeforeValidator(_published_is_active),
    Field(description='"active" (seed 004: "published"), "draft" or "archived".'),
]
Priority = Annotated[
    int, Field(ge=-1000, le=1000, description="Higher first in lists (default 0).")
]


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
    category: Category | None = Field(
        default=None, description="A category name; the category is created when new."
    )
    category_id: Text | None = Field(
        default=None, max_length=36, description="Or an existing category's id."
    )
    priority: Priority = 0
    tags: Tags = Field(default_factory=list)
    language: LanguageCode = "en"
    status: Status = "active"
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )


# Fields an update may set but never to null.
_REQUIRED = ("question", "answer", "tags", "language", "status", "priority")


class FaqUpdate(BaseModel):
    """A partial update: only the fields sent change; a new question is re-embedded."""

    question: Question | None = None
    answer: Answer | None = None
    category: Category | None = Field(default=None, description="null clears the category.")
    category_id: Text | None = Field(
        default=None, max_length=36, description="An existing category's id; null clears it."
    )
    priority: Priority | None = None
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
    category_id: str | None
    priority: int
    tags: list[str]
    language: str
    status: str
    hits: int
    view_count: int
    helpful_count: int
    not_helpful_count: int
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


class FaqFeedback(BaseModel):
    """A reader's verdict on an FAQ's answer."""

    helpful: bool


class CategoryCreate(BaseModel):
    """A new FAQ category."""

    name: Category
    description: Text | None = Field(default=None, max_length=2000)
    position: int = Field(default=0, ge=0, le=100_000, description="Sort order (ascending).")
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )


class CategoryUpdate(BaseModel):
    """A partial update of a category; a new name is carried to its FAQs."""

    name: Category | None = None
    description: Text | None = Field(default=None, max_length=2000)
    position: int | None = Field(default=None, ge=0, le=100_000)

    @model_validator(mode="after")
    def _no_nulls(self) -> CategoryUpdate:
        nulls = [
            f
            for f in ("name", "position")
            if f in self.model_fields_set and getattr(self, f) is None
        ]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class CategoryPublic(BaseModel):
    """An FAQ category with how many FAQs it holds."""

    id: str
    user_id: str
    name: str
    description: str | None
    position: int
    faq_count: int
    created_at: datetime
    updated_at: datetime


class CategoryList(BaseModel):
    """A page of categories by position, then name."""

    items: list[CategoryPublic]
    total: int
    page: int
    limit: int
    pages: int
