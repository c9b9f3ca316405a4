"""Page/limit query parameters shared by list endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query


@dataclass(frozen=True, slots=True)
class Page:
    """A requested page: 1-based number and size."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.limit

    def pages(self, total: int) -> int:
        """How many pages of this size `total` items fill."""
        return -(-total // self.limit)


async def page_params(
    page: Annotated[int, Query(ge=1, le=100_000, description="1-based page number")] = 1,
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page")] = 20,
) -> Page:
    """Read `page` and `limit` from the query string."""
    return Page(page, limit)


PageDep = Annotated[Page, Depends(page_params)]
