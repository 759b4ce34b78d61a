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
    """Casbin adapter on the project database's ``casbin_rule`` table (synchronous engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_policy(self, model: Any) -> None:
        with self.engine.connect() as conn:
            for row in conn.execute(select(CasbinRule).order_by(CasbinRule.id)):
                values = [row.ptype, row.v0, row.v1, row.v2, row.v3, row.v4, row.v5]
                if row.ptype == "p":
                    line = values[:7]
                else:
                    line = values[:3]
                persist.load_policy_line(", ".join(_quote(v) for v in line), model)

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
    rules: Iterable[list[str]] = (),
    now: float | None = None,
) -> casbin.Enforcer:
    """A plain Casbin enforcer over the stored rules (or ``rules``), for explain and equivalence checks."""
    model = casbin.Enforcer.new_model(text=MODEL_TEXT)
    e = casbin.Enforcer(model, SqlAdapter(engine)) if engine is not None else casbin.Enforcer(model)
    e.add_function("actionApplies", _action_applies)
    clock = (lambda: now) if now is not None else time.time

    def within(window: str) -> bool:
        nbf, exp = parse_window(window)
        return bool(nbf <= clock() < exp)  # type: ignore[no-untyped-call]

    e.add_function("withinWindow", within)
    e.enable_auto_save(False)
    extra_p = [r for r in rules]
    if extra_p:
        e.add_policies(extra_p)
    m = list(memberships)
    if m:
        e.add_named_grouping_policies("g", [list(x) for x in m])
    gm = list(group_members)
    if gm:
        e.add_named_grouping_policies("g2", [list(x) for x in gm])
    return e
