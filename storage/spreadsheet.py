"""CSV cells a spreadsheet will not run as formulas (OWASP "CSV injection").

Every CSV Liandong writes (the camera and vehicle inventory export, the audit export) passes its
text cells through :func:`safe_cell`: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'``, which spreadsheets show as text. Importers that read such a
file back remove that quote again (:func:`unquote_cell`), so an export re-imports unchanged.
"""

from __future__ import annotations

__all__ = ["FORMULA_STARTS", "safe_cell", "unquote_cell"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` for a CSV cell: text that a spreadsheet would read as a formula is prefixed with
    ``'``; numbers stay numbers (``-31.2`` is a latitude, not a formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unquote_cell(text: str) -> str:
    """A cell written by :func:`safe_cell`, as it was before."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text
