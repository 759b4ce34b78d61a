"""Times that come in as text from other systems (alarm feeds, GPS feeds): ISO 8601 with a zone."""

from __future__ import annotations

import datetime as dt

__all__ = ["parse_zoned"]


def parse_zoned(text: str) -> dt.datetime:
    """An ISO 8601 time that names its zone (``Z`` or an offset such as ``+08:00``).

    Raises ValueError (``not an ISO 8601 time``, ``needs a timezone ...``): a time without a zone could
    be any of 24 hours, so it is refused rather than guessed."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError("needs a timezone (e.g. +08:00 or Z)")
    return when
