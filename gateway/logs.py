"""Structured logging with a per-request id; readable text by default, JSON lines when configured."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys

__all__ = ["REQUEST_ID", "configure_logging", "redact"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# user:password@ in any URL-ish text; a last line of defence, the code never logs credentials.
_CRED_RE = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^\s/@:]+(?::[^\s/@]*)?@")


def redact(text: str) -> str:
    """Remove ``user:password@`` from URLs in ``text``."""
    return _CRED_RE.sub(r"\1***@", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    _SKIP = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._SKIP and not k.startswith("_"):
                out[k] = v if isinstance(v, int | float | bool | type(None)) else str(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, ensure_ascii=False))


def configure_logging(level: str = "INFO", fmt: str = "text", stream: object = None) -> None:
    """Install the root handler (idempotent: replaces the previous Liandong handler)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_liandong", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler._liandong = True  # type: ignore[attr-defined]
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aioice", "aiortc", "libav", "sqlalchemy.engine", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
