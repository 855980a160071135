"""Shared schema pieces: the request base, pages, and the error body (for OpenAPI)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

MAX_PAGE_SIZE = 500
"""Largest ``page_size`` a list endpoint accepts (larger asks are a 422)."""
DEFAULT_PAGE_SIZE = 50

T = TypeVar("T")

DecimalOut = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]
"""A Decimal answered as an exact plain string: ``"0.00000000"``, never ``"0E-8"``."""


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PublicModel(BaseModel):
    """Base of every response body; built from the Store's read records."""

    model_config = ConfigDict(from_attributes=True)


class Page(PublicModel, Generic[T]):
    """One page of a list: ``items`` plus where it sits in the whole result."""

    items: list[T]
    total: int = Field(description="number of matching items over all pages")
    page: int = Field(description="1-based page number")
    page_size: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The shape of every 4xx/5xx answer."""

    error: ErrorDetail


class Message(PublicModel):
    """A plain acknowledgement."""

    message: str
