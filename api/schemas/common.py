"""Shared schema pieces: the request base, bounded JSON objects, pages, and the error
body (for OpenAPI).

Two rules keep input the databases cannot store, or that costs more than it is worth,
out before anything is written (a 422 naming the field, never a 500 after a commit):

* every string of every request body (keys and values, at any depth) is storable text:
  no NUL character (PostgreSQL refuses it), no lone surrogate (neither database can
  encode it) — :class:`RequestModel`; query strings get the same check in
  ``api.middleware.UnstorableTextMiddleware``;
* every free-form object (plugin configs, ``data_source``, backtest parameters) is a
  :data:`JsonObject`: at most :data:`MAX_JSON_DEPTH` levels deep, :data:`MAX_JSON_ITEMS`
  keys and elements in all, strings of at most :data:`MAX_JSON_STRING` characters, keys
  of at most :data:`MAX_JSON_KEY`, finite numbers only (a deep object once failed in the
  engine, after the row and its audit row were committed).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from engine.public_text import public_text
from persistence.records import MAX_PAGE_SIZE as MAX_PAGE_SIZE  # re-exported: the API pages as the Store does

# The largest ``page_size`` a list endpoint accepts (larger asks are a 422) is the
# Store's own page cap: one number, so the API never promises more than a page holds.
DEFAULT_PAGE_SIZE = 50

T = TypeVar("T")

DecimalOut = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]
"""A Decimal answered as an exact plain string: ``"0.00000000"``, never ``"0E-8"``."""


MAX_JSON_DEPTH = 32
"""Deepest nesting of a free-form object (``{"a": {"b": 1}}`` is 2 deep)."""
MAX_JSON_ITEMS = 10_000
"""Keys and elements of one free-form object, counted over every level."""
MAX_JSON_STRING = 10_000
"""Longest string value in a free-form object, in characters."""
MAX_JSON_KEY = 256
"""Longest key in a free-form object, in characters."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Any request body deeper than this is refused whatever its fields (a free-form object
# inside a body sits a level or two below the body itself).
_MAX_BODY_DEPTH = MAX_JSON_DEPTH + 4


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None. (NUL: PostgreSQL's text types refuse it;
    a lone surrogate is no Unicode character, so no database can encode it.)"""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character"
    return "contains a lone surrogate (not valid Unicode)"


def _at(where: str, key: object) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))


def _shown(where: str, default: str) -> str:
    """A location for a message: a hostile one may be 32 long keys deep."""
    where = where or default
    return where if len(where) <= 120 else where[:117] + "..."


def unstorable_text(value: Any) -> str | None:
    """The first string in ``value`` (a parsed JSON document: keys too, at any depth)
    that cannot be stored, as ``"where: why"``; or a nesting deeper than any request
    needs. None when all is well. Iterative: a hostile depth cannot exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{_shown(where, 'value')}: text {problem}"
        elif isinstance(item, (dict, list)):
            if depth >= _MAX_BODY_DEPTH:
                return f"{_shown(where, 'value')}: nested too deeply (free-form objects: {MAX_JSON_DEPTH} levels)"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in pairs:
                if isinstance(key, str) and (problem := text_problem(key)):
                    return f"{_shown(where, 'body')}: a key {problem}"
                stack.append((sub, _at(where, key), depth + 1))
    return None


def json_bounds_problem(value: Any) -> str | None:
    """Why the free-form JSON ``value`` is refused (too deep, too big, a string or key
    too long, a number that is not finite), as ``"where: why"``; None when it is fine."""
    items = 0
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return f"{_shown(where, 'object')}: nested deeper than {MAX_JSON_DEPTH} levels"
            items += len(item)
            if items > MAX_JSON_ITEMS:
                return f"{_shown(where, 'object')}: more than {MAX_JSON_ITEMS} keys and elements in all"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in pairs:
                if isinstance(key, str) and len(key) > MAX_JSON_KEY:
                    return f"{_shown(where, 'object')}: a key is longer than {MAX_JSON_KEY} characters"
                stack.append((sub, _at(where, key), depth + 1))
        elif isinstance(item, str):
            if len(item) > MAX_JSON_STRING:
                return f"{_shown(where, 'object')}: text longer than {MAX_JSON_STRING} characters"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{_shown(where, 'object')}: {item!r} is not a finite number"
    return None


def _check_json_bounds(value: Any) -> Any:
    problem = json_bounds_problem(value)
    if problem:
        raise ValueError(problem)
    return value


BoundedJson = AfterValidator(_check_json_bounds)
"""Put on any free-form JSON field: ``Annotated[dict[str, list[Any]], BoundedJson]``."""

JsonObject = Annotated[dict[str, Any], BoundedJson]
"""A free-form JSON object within the bounds above (plugin configs, ``data_source``...)."""


PublicText = Annotated[str, AfterValidator(public_text)]
"""A response field that carries an error text (``status_reason``, an order's ``reason``,
a backtest's ``error``...): answered as ``engine.public_text`` cleans it, one line with
no server internals. The engine writes them clean; this also covers rows written before
it did, or by tools that do not."""


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused, not ignored, and every
    string must be storable text (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _storable_text_only(cls, data: Any) -> Any:
        problem = unstorable_text(data) if isinstance(data, (dict, list)) else None
        if problem:
            raise ValueError(problem)
        return data


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
