"""Who has used a data dir: ``liandong serve`` or the demo (a marker file in the data dir).

The demo seeds well-known passwords (``admin / liandong-admin`` ...). It must never do that to a
data dir a real gateway runs on, so ``serve`` marks its data dir, and the demo seeds only an
empty data dir or one marked as the demo's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["MARKER", "DataDirInUse", "check_demo_may_seed", "mark", "used_by"]

MARKER = ".liandong-used-by"
User = Literal["serve", "demo"]


class DataDirInUse(Exception):
    """The demo was pointed at a data dir it must not seed; the message says why and what to do."""


def used_by(data_dir: Path) -> str | None:
    """``serve``, ``demo`` or None (never marked)."""
    try:
        return (data_dir / MARKER).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def mark(data_dir: Path, user: User) -> None:
    """Record that ``user`` runs on ``data_dir`` (created if missing)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if used_by(data_dir) != user:
        (data_dir / MARKER).write_text(user + "\n", encoding="utf-8")


def check_demo_may_seed(data_dir: Path) -> None:
    """Raise :class:`DataDirInUse` unless ``data_dir`` is new, empty or the demo's own."""
    owner = used_by(data_dir)
    if owner == "demo":
        return
    if owner == "serve":
        why = "`liandong serve` has used it"
    elif data_dir.is_dir() and any(data_dir.iterdir()):
        why = "it already holds data that is not the demo's"
    else:
        return
    raise DataDirInUse(
        f"the demo will not seed its public passwords (admin / liandong-admin ...) into {data_dir}: {why}. "
        "Run the demo on its own data dir (the default, var/demo, or --data-dir DIR)."
    )
