"""Query parameter types that several routes take."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = ["ZonedSince"]


def _zoned(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise PydanticCustomError("timezone", "needs a timezone")
    return value


ZonedSince = Annotated[
    dt.datetime | None,
    Query(description="incidents opened since (ISO 8601 with a zone); default: all"),
    AfterValidator(_zoned),
]
"""``?since=``: a time with a zone (a time without one could be any of 24 hours), or None."""
