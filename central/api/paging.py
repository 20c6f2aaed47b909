"""Paging for list endpoints: `limit` (1..500, default 50) and `offset` in; items and total out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from central.services.query import Slice

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000_000

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many items to return.")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip.")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Paging = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    """One page of a list; `total` counts every item that matches the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


def page_of(found: Slice[R], convert: Callable[[R], T]) -> Page[T]:
    """Turn a service `Slice` of rows into an API `Page`, converting each row while the session is open."""
    return Page[T](
        items=[convert(row) for row in found.items], total=found.total, limit=found.limit, offset=found.offset
    )
