"""Checks a verifier runs: is this clip what the gateway exported (its manifest's hash and signature),
and is a camera's chain of segments whole (no segment edited, removed or reordered)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recording.models import RecordingSegment
from recording.signing import verify_signature
from recording.writer import sha256_file

__all__ = ["verify_chain", "verify_clip"]

# A pre-roll segment may start a little before the previous one (both hold the GOP cached at the
# alarm); a segment starting earlier than this before its predecessor is out of order.
REORDER_TOLERANCE_S = 5.0


def verify_clip(clip: Path, doc: dict[str, Any], trusted_key: str | None = None) -> list[str]:
    """What differs between ``clip`` and its manifest (empty: it is the clip the gateway exported).
    ``trusted_key``: the gateway's public key (base64); else the key the manifest names is used."""
    problems: list[str] = []
    key = str(doc.get("public_key", ""))
    if trusted_key is not None and key != trusted_key:
        problems.append("manifest: signed with another key than the gateway's")
    if not verify_signature(doc, key):
        problems.append("manifest: the signature does not match its contents (the manifest was altered)")
    want = doc.get("clip", {}).get("sha256") if isinstance(doc.get("clip"), dict) else None
    if not clip.is_file():
        problems.append(f"clip: {clip} is not a file")
    else:
        got = sha256_file(clip)
        if got != want:
            problems.append(f"clip: sha256 {got} differs from the manifest's {want}")
    return problems


def verify_chain(rows: list[RecordingSegment], root: Path) -> list[str]:
    """Problems in a camera's segments in chain order (``rows`` from :meth:`RecordingIndex.chain`;
    the first one only anchors the chain): a file whose bytes changed, a file gone that retention did
    not delete, a link that does not name the previous segment (one removed or reordered)."""
    problems: list[str] = []
    for i, r in enumerate(rows):
        if i > 0:
            prev = rows[i - 1]
            if r.prev_sha256 != prev.sha256:
                problems.append(
                    f"segment {r.id} ({r.path}): its link names {r.prev_sha256[:16] or 'nothing'}, not the previous"
                    f" segment {prev.id}'s {prev.sha256[:16]} (a segment was removed or reordered)"
                )
            if r.start < prev.start - REORDER_TOLERANCE_S:
                problems.append(f"segment {r.id} ({r.path}): starts before segment {prev.id} (reordered)")
        if r.deleted_at is not None:
            continue
        path = root / r.path
        if not path.is_file():
            problems.append(f"segment {r.id} ({r.path}): the file is missing")
            continue
        got = sha256_file(path)
        if got != r.sha256:
            problems.append(f"segment {r.id} ({r.path}): sha256 {got[:16]} differs from the index's {r.sha256[:16]}")
    return problems
