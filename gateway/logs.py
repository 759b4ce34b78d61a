"""Structured logging with a per-request id; readable text by default, JSON lines when configured."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys

from camera_registry.url_secrets import mask_in_url

__all__ = ["REQUEST_ID", "configure_logging", "escape_controls", "redact"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# user:password@ in any URL-ish text; a last line of defence, the code never logs credentials.
_CRED_RE = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^\s/@:]+(?::[^\s/@]*)?@")
_URL_RE = re.compile(r"(?i)[a-z][a-z0-9+.-]*://\S+")
# Line breaks and other control characters (C0, DEL, C1, Unicode line and paragraph separators).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def redact(text: str) -> str:
    """Remove ``user:password@`` from URLs in ``text``, and the values of credential parameters in
    their path or query (``?user=admin&password=x``)."""
    return _URL_RE.sub(lambda m: mask_in_url(m[0]), _CRED_RE.sub(r"\1***@", text))


def escape_controls(text: str) -> str:
    """``text`` on one line: CR, LF and other control characters written as escapes (``\\n``,
    ``\\x1b``), so input logged by a message cannot start a forged line or drive a terminal."""
    return _CONTROL_RE.sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    c = m[0]
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class _TextFormatter(logging.Formatter):
    """One line per record (message and arguments escaped; a traceback follows on its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

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
        # json.dumps escapes C0 controls but not these, which some line readers split on.
        return redact(json.dumps(out, ensure_ascii=False)).translate(_JSON_BREAKS)


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
