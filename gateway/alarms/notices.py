"""The notification outbox: notices are rows written in the same transaction as the step that
causes them (a dispatch, a deadline coming or passing), and a worker delivers them at least once,
with retries and exponential backoff, through the configured senders
(:mod:`gateway.alarms.delivery`). Each notice has an idempotency key, stable across retries and
restarts, so a receiver that honours it acts on each notice once; a ``kill -9`` between the step and
the delivery loses nothing, because the row was committed with the step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.alarms.delivery import DeliveryError, NoticeOut, NoticeSender
from gateway.alarms.models import Incident, Notice
from gateway.alarms.settings import NotifySettings
from storage.db import Database, utcnow

__all__ = ["NoticeWorker", "Outbox", "notice_dict"]

log = logging.getLogger(__name__)
DEADLINE_NAMES = {"onsite": "到场时限", "resolve": "办结时限"}


def notice_dict(n: Notice) -> dict[str, Any]:
    """A notice's delivery state, as the case shows it (the phone number masked)."""
    to = n.payload.get("to")
    return {
        "key": n.key,
        "kind": n.kind,
        "unit": n.unit,
        "channel": n.channel,
        "to": (to[:3] + "****" + to[-4:]) if isinstance(to, str) and len(to) >= 7 else None,
        "state": n.state,
        "attempts": n.attempts,
        "last_error": n.last_error,
        "created_at": n.created_at.isoformat(),
        "sent_at": n.sent_at.isoformat() if n.sent_at else None,
    }


class Outbox:
    """Writes notices into the caller's transaction, for the channels that are configured."""

    def __init__(self, settings: NotifySettings, channels: set[str], unit_names: Mapping[str, str] | None = None):
        self.settings = settings
        self.channels = channels  # the senders the worker has ("webhook", "sms")
        self.unit_names = unit_names or {}

    def add(
        self, s: AsyncSession, inc: Incident, kind: str, unit: str, key: str, extra: dict[str, Any] | None = None
    ) -> int:
        """Add the notices of one event for one unit to session ``s``; ``key`` makes them unique
        (the channel and phone number are appended). Returns how many were added."""
        payload: dict[str, Any] = {
            "incident_id": inc.id,
            "category": inc.category or inc.type,
            "address": inc.address or inc.area,
            "unit": unit,
            "unit_name": self.unit_names.get(unit, unit),
            "onsite_deadline": _local(inc.onsite_deadline),
            "resolve_deadline": _local(inc.resolve_deadline),
            **(extra or {}),
        }
        n = 0
        if "webhook" in self.channels:
            s.add(
                Notice(
                    key=f"{key}:webhook",
                    incident_id=inc.id,
                    kind=kind,
                    unit=unit,
                    channel="webhook",
                    payload=payload,
                    state="pending",
                    attempts=0,
                    next_at=utcnow(),
                    last_error="",
                )
            )
            n += 1
        if "sms" in self.channels:
            for phone in self.settings.contacts.get(unit, []):
                s.add(
                    Notice(
                        key=f"{key}:sms:{phone}",
                        incident_id=inc.id,
                        kind=kind,
                        unit=unit,
                        channel="sms",
                        payload={**payload, "to": phone},
                        state="pending",
                        attempts=0,
                        next_at=utcnow(),
                        last_error="",
                    )
                )
                n += 1
        return n

    def deadline(self, s: AsyncSession, inc: Incident, which: str, when: str) -> int:
        """Notices to the unit the case is dispatched to: deadline ``which`` is coming (``soon``)
        or has passed (``passed``)."""
        if not inc.dispatched_to:
            return 0
        at = inc.onsite_deadline if which == "onsite" else inc.resolve_deadline
        return self.add(
            s,
            inc,
            f"deadline_{when}",
            inc.dispatched_to,
            f"{inc.id}:deadline_{when}:{which}:{inc.dispatched_to}",
            {"deadline": _local(at), "deadline_kind": which, "deadline_name": DEADLINE_NAMES[which]},
        )


def _local(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%m-%d %H:%M")


class NoticeWorker:
    """Delivers due notices through the senders, one attempt at a time per notice."""

    def __init__(self, settings: NotifySettings, db: Database, senders: Mapping[str, NoticeSender]) -> None:
        self.settings = settings
        self.db = db
        self.senders = dict(senders)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New notices were committed: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            try:
                while await self.deliver_due() > 0:
                    pass
            except Exception:  # the worker must keep running; the rows stay pending
                log.exception("notice delivery failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            except TimeoutError:
                pass

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass over due notices; how many were attempted."""
        now = utcnow()
        async with self.db.session() as s:
            q = (
                select(Notice)
                .where(Notice.state == "pending", Notice.next_at <= now)
                .order_by(Notice.next_at, Notice.id)
                .limit(limit)
            )
            due = list((await s.execute(q)).scalars())
        if not due:
            return 0
        await asyncio.gather(*(self._attempt(n) for n in due))
        return len(due)

    async def _attempt(self, n: Notice) -> None:
        sender = self.senders.get(n.channel)
        # Claim: push next_at past this attempt, only if no other node claimed it meanwhile.
        lease = utcnow() + dt.timedelta(seconds=self.settings.timeout_s * 2 + 1)
        async with self.db.session() as s:
            res = await s.execute(
                update(Notice).where(Notice.id == n.id, Notice.next_at == n.next_at).values(next_at=lease)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return
        error = ""
        if sender is None:
            error = f"no sender for channel {n.channel}"
        else:
            out = NoticeOut(n.key, n.incident_id, n.kind, n.unit, dict(n.payload))
            try:
                await asyncio.wait_for(sender.send(out), self.settings.timeout_s)
            except TimeoutError:
                error = f"timed out after {self.settings.timeout_s:g} s"
            except DeliveryError as e:
                error = str(e)
        attempts = n.attempts + 1
        values: dict[str, Any] = {"attempts": attempts}
        if not error:
            values.update(state="sent", sent_at=utcnow(), last_error="")
        else:
            delay = min(self.settings.retry_base_s * 2 ** (attempts - 1), self.settings.retry_max_s)
            delay *= random.uniform(0.8, 1.2)  # jitter: many notices failing together do not retry together
            failed = attempts >= self.settings.max_attempts
            values.update(
                state="failed" if failed else "pending",
                next_at=utcnow() + dt.timedelta(seconds=delay),
                last_error=error[:300],
            )
            log.warning("notice %s attempt %d failed: %s", n.key, attempts, error)
        async with self.db.session() as s:
            await s.execute(update(Notice).where(Notice.id == n.id).values(**values))

    async def for_incident(self, incident_id: str) -> list[Notice]:
        """The notices of one case, oldest first."""
        async with self.db.session() as s:
            q = select(Notice).where(Notice.incident_id == incident_id).order_by(Notice.id)
            return list((await s.execute(q)).scalars())
