"""The Casbin model of Liandong's viewing policy, its database adapter, and a reference enforcer.

Rules live in ``casbin_rule`` in Casbin's shape:

- ``p, <sub>, <obj>, <act>, <allow|deny>, <window>, <tag>`` -- a grant or deny rule; ``sub`` is
  ``dept:<id>``, ``role:<name>`` or ``*``; ``obj`` is ``cam:<id>`` or ``group:<id>``; ``window``
  is ``"<nbf>..<exp>"`` in epoch seconds (either side may be empty); ``tag`` marks incident grants
  (``incident:<id>``) and the location rule (``location``).
- ``g2, cam:<id>, group:<id>`` -- a static group member.

Users' memberships (``g, user:<id>, dept:<id>`` and ``g, user:<id>, role:<name>``) and the members
of dynamic and computed groups (more ``g2`` lines) are added in memory when an enforcer is built,
since they derive from the user and camera tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import casbin
from casbin import persist
from sqlalchemy import Engine, select

from acl.index import ACTION_LEVEL, parse_window
from acl.policy_models import CasbinRule

__all__ = ["MODEL_TEXT", "SqlAdapter", "reference_enforcer"]

MODEL_TEXT = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft, window, tag

[role_definition]
g = _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == "*" || g(r.sub, p.sub)) && (r.obj == p.obj || g2(r.obj, p.obj)) \
    && actionApplies(p.act, p.eft, r.act) && withinWindow(p.window)
"""


def _action_applies(p_act: str, p_eft: str, r_act: str) -> bool:
    p, r = ACTION_LEVEL.get(p_act, 99), ACTION_LEVEL.get(r_act, 0)
    return p >= r if p_eft == "allow" else p <= r


class SqlAdapter(persist.Adapter):  # type: ignore[misc]
    """Casbin adapter on the project database's ``casbin_rule`` table (synchronous engine).

    ``extra`` lines (``[ptype, v0, v1, ...]``) are loaded after the stored ones: the derived
    ``g``/``g2`` lines. Loading them here rather than through ``add_*_policies`` keeps a load of
    tens of thousands of lines linear (Casbin checks each added line against the whole policy).
    """

    def __init__(self, engine: Engine | None, extra: Iterable[Sequence[str]] = ()) -> None:
        self.engine = engine
        self.extra = extra

    def load_policy(self, model: Any) -> None:
        if self.engine is not None:
            with self.engine.connect() as conn:
                for row in conn.execute(select(CasbinRule).order_by(CasbinRule.id)):
                    values = [row.ptype, row.v0, row.v1, row.v2, row.v3, row.v4, row.v5]
                    line = values[:7] if row.ptype == "p" else values[:3]
                    persist.load_policy_line(", ".join(_quote(v) for v in line), model)
        for extra in self.extra:
            persist.load_policy_line(", ".join(_quote(v) for v in extra), model)

    def save_policy(self, model: Any) -> bool:
        raise NotImplementedError("policies are written through acl.policy.PolicyStore (transactional, revisioned)")

    def add_policy(self, sec: str, ptype: str, rule: list[str]) -> None:
        raise NotImplementedError("policies are written through acl.policy.PolicyStore (transactional, revisioned)")

    def remove_policy(self, sec: str, ptype: str, rule: list[str]) -> None:
        raise NotImplementedError("policies are written through acl.policy.PolicyStore (transactional, revisioned)")


def _quote(v: str) -> str:
    # Casbin's CSV-ish line format: quote values with commas or quotes.
    if "," in v or '"' in v:
        return '"' + v.replace('"', '""') + '"'
    return v


def reference_enforcer(
    engine: Engine | None,
    *,
    memberships: Iterable[Sequence[str]] = (),
    group_members: Iterable[Sequence[str]] = (),
    rules: Iterable[Sequence[str]] = (),
    now: float | None = None,
) -> casbin.Enforcer:
    """A plain Casbin enforcer over the stored rules (and/or ``rules``: ``p`` lines without the
    ptype), with ``memberships`` as ``g`` lines and ``group_members`` as ``g2`` lines."""
    model = casbin.Enforcer.new_model(text=MODEL_TEXT)
    extra = [["p", *r] for r in rules]
    extra += [["g", *m] for m in memberships]
    extra += [["g2", *m] for m in group_members]
    e = casbin.Enforcer(model, SqlAdapter(engine, extra))
    e.enable_auto_save(False)
    e.add_function("actionApplies", _action_applies)
    clock = (lambda: now) if now is not None else time.time

    def within(window: str) -> bool:
        nbf, exp = parse_window(window)
        return bool(nbf <= clock() < exp)  # type: ignore[no-untyped-call]

    e.add_function("withinWindow", within)
    return e
