"""Case categories and their deadlines: to be on site and to resolve, in hours.

An administrator edits the table (``PUT /api/incident-categories``); a category that has no row
uses the settings (``alarms.onsite_hours`` / ``alarms.resolve_hours``, ``*`` for any: 3 h and 168 h
by the district's rules). The table is small and read on every dispatch, so it is kept in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select

from gateway.alarms.models import IncidentCategory
from gateway.settings import AlarmSettings
from storage.db import Database, utcnow

__all__ = ["Category", "CategoryError", "CategoryTable"]

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
MAX_HOURS = 24 * 365


class CategoryError(ValueError):
    """An invalid category (message names the field)."""


@dataclass(frozen=True, slots=True)
class Category:
    """A category's deadlines."""

    name: str
    label: str
    onsite_hours: float
    resolve_hours: float
    configured: bool  # a stored row (else the settings' defaults)


class CategoryTable:
    """The stored categories, with the settings' defaults for the rest."""

    def __init__(self, settings: AlarmSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._rows: dict[str, Category] = {}

    async def load(self) -> None:
        """Read the stored categories."""
        async with self.db.session() as s:
            rows = (await s.execute(select(IncidentCategory))).scalars()
            self._rows = {r.name: Category(r.name, r.label, r.onsite_hours, r.resolve_hours, True) for r in rows}

    def get(self, name: str) -> Category:
        """The deadlines of ``name`` as last loaded (stored, else from the settings)."""
        if name in self._rows:
            return self._rows[name]
        on, res = self.settings.onsite_hours, self.settings.resolve_hours
        return Category(name, "", on.get(name, on.get("*", 3.0)), res.get(name, res.get("*", 168.0)), False)

    async def lookup(self, name: str) -> Category:
        """The deadlines of ``name`` as stored now (read from the database, so an edit made through
        another node counts at once), else from the settings."""
        async with self.db.session() as s:
            r = await s.get(IncidentCategory, name)
        if r is not None:
            return Category(r.name, r.label, r.onsite_hours, r.resolve_hours, True)
        return self.get(name)

    def all(self) -> list[Category]:
        """Every stored category, by name."""
        return [self._rows[n] for n in sorted(self._rows)]

    @staticmethod
    def check(items: list[dict[str, object]]) -> list[Category]:
        """Validate a whole table; raises :class:`CategoryError` naming the first bad field."""
        out: dict[str, Category] = {}
        for i, it in enumerate(items):
            name = it.get("name")
            if not isinstance(name, str) or not NAME.match(name):
                raise CategoryError(f"[{i}].name: lower-case letters, digits, _ . - (1-32)")
            if name in out:
                raise CategoryError(f"[{i}].name: '{name}' appears twice")
            label = it.get("label", "")
            if not isinstance(label, str) or len(label) > 128:
                raise CategoryError(f"[{i}].label: at most 128 characters")
            hours = []
            for key in ("onsite_hours", "resolve_hours"):
                v = it.get(key)
                if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= MAX_HOURS:
                    raise CategoryError(f"[{i}].{key}: a number of hours, more than 0 and at most {MAX_HOURS}")
                hours.append(float(v))
            if hours[0] > hours[1]:
                raise CategoryError(f"[{i}].onsite_hours: cannot be later than resolve_hours")
            out[name] = Category(name, label, hours[0], hours[1], True)
        return list(out.values())

    async def replace(self, items: list[dict[str, object]], author: str) -> list[Category]:
        """Replace the whole table in one transaction (nothing changes if any item is invalid)."""
        cats = self.check(items)
        async with self.db.session() as s:
            await s.execute(delete(IncidentCategory))
            for c in cats:
                s.add(
                    IncidentCategory(
                        name=c.name,
                        label=c.label,
                        onsite_hours=c.onsite_hours,
                        resolve_hours=c.resolve_hours,
                        updated_by=author,
                        updated_at=utcnow(),
                    )
                )
        self._rows = {c.name: c for c in cats}
        return self.all()
