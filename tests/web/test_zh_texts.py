"""zh-CN completeness: every console text key has a Chinese text (and an English one), every key the
pages and scripts use exists, and every policy refusal the server can send has a line in the one
refusal table both consoles share (web/static/server-texts.js, evaluated by Node as the browser would)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from acl.index import ACTION_LEVEL, DYNAMIC_KEYS
from acl.models import Role
from acl.policy_models import OrgLevel
from camera_registry.models import CameraKind, CameraStatus
from gateway.alarms.incidents import ACTIONS as INCIDENT_ACTIONS
from gateway.policy.rules import VEHICLE_DETAIL_FIELDS

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "web" / "static"
KEY = re.compile(r"(?:^\s+|,\s+)([a-z][a-z0-9_]*):\s", re.MULTILINE)
# Keys built at run time from a value (t(`kind_${...}`), t("role_" + ...)), with every value the server sends.
ENUMS = {
    "kind_": tuple(CameraKind),
    "status_": tuple(CameraStatus),
    "vehicle_": tuple(f for fields in VEHICLE_DETAIL_FIELDS.values() for f in fields),
    "act_": tuple(ACTION_LEVEL),
    "f_": DYNAMIC_KEYS,
    "level_": tuple(OrgLevel),
    "role_": tuple(Role),
}


def blocks(path: Path) -> tuple[set[str], set[str]]:
    """The zh and en keys of a text module's TEXT object."""
    text = path.read_text(encoding="utf-8")
    zh = text[text.index("  zh: {") : text.index("\n  en: {")]
    en = text[text.index("\n  en: {") : text.index("\n};")]
    return set(KEY.findall(zh)) - {"zh"}, set(KEY.findall(en)) - {"en"}


def used(paths: list[Path], html: Path, enums: dict[str, tuple[object, ...]]) -> set[str]:
    """Text keys named literally in scripts (t("key")) and pages (data-i18n*="key"), and the enumerated ones."""
    keys = set(re.findall(r'data-i18n(?:-placeholder|-title)?="([a-z0-9_]+)"', html.read_text(encoding="utf-8")))
    for p in paths:
        src = p.read_text(encoding="utf-8")
        keys |= {k for k in re.findall(r'\bt\("([a-z0-9_]+)"', src) if not k.endswith("_")}
        for prefix, values in enums.items():
            if f"t(`{prefix}${{" in src or f't("{prefix}" +' in src:
                keys |= {prefix + str(v) for v in values}
    return keys


def test_every_operator_console_text_has_chinese_and_english() -> None:
    zh, en = blocks(STATIC / "i18n.js")
    assert zh == en, {"zh only": sorted(zh - en), "en only": sorted(en - zh)}
    scripts = [p for p in STATIC.glob("*.js") if not p.name.startswith(("admin", "docs"))]
    # The operator console's act_ keys are the incident steps (and what history records), not ACL actions.
    enums = {**ENUMS, "act_": (*sorted(INCIDENT_ACTIONS), "opened", "cameras")}
    missing = used(scripts, STATIC / "index.html", enums) - zh
    assert not missing, f"keys without a zh-CN text: {sorted(missing)}"


def test_every_admin_console_text_has_chinese_and_english() -> None:
    zh, en = blocks(STATIC / "admin-i18n.js")
    assert zh == en, {"zh only": sorted(zh - en), "en only": sorted(en - zh)}
    missing = used(sorted(STATIC.glob("admin*.js")), STATIC / "admin.html", ENUMS) - zh
    assert not missing, f"keys without a zh-CN text: {sorted(missing)}"


def _policy_refusals() -> list[tuple[str, list[str]]]:
    """Every PolicyError the server raises: (where, its reason with placeholders filled in a few ways)."""
    out = []
    for path in [*sorted((ROOT / "acl").glob("*.py")), *sorted((ROOT / "gateway").rglob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PolicyError" and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                variants = [arg.value]
            elif isinstance(arg, ast.JoinedStr):
                variants = [
                    "".join(v.value if isinstance(v, ast.Constant) else fill for v in arg.values)
                    for fill in ("x", "12", "a, b")
                ]
            else:
                continue
            reasons = [v.split(": ", 1)[1] if ": " in v else v for v in variants]
            out.append((f"{path.relative_to(ROOT)}:{node.lineno}", reasons))
    return out


@pytest.mark.skipif(shutil.which("node") is None, reason="node (installed with the consoles' npm packages) is needed")
def test_every_policy_refusal_has_a_chinese_text(tmp_path: Path) -> None:
    refusals = _policy_refusals()
    assert len(refusals) >= 30  # the walk found them (it would pass vacuously otherwise)
    refusals.append(("gateway/routes/vehicles.py", ["no vehicle 'bus-1' you may view"]))
    script = tmp_path / "check.mjs"
    script.write_text(
        f"const {{ translateServer }} = await import({json.dumps((STATIC / 'server-texts.js').as_uri())});\n"
        "const items = JSON.parse(process.argv[2]);\n"
        "const out = items.map(([where, reasons]) => {\n"
        "  const hit = reasons.find((r) => translateServer(r, 'zh') !== r);\n"
        "  return [where, hit !== undefined, translateServer(hit ?? reasons[0], 'zh')];\n"
        "});\n"
        "console.log(JSON.stringify(out));\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        ["node", str(script), json.dumps(refusals)], capture_output=True, text=True, timeout=60, check=True
    )
    results = json.loads(run.stdout)
    untranslated = [
        (where, reasons[0]) for (where, ok, _), (_, reasons) in zip(results, refusals, strict=True) if not ok
    ]
    assert not untranslated, f"refusals without a zh-CN text in web/static/server-texts.js: {untranslated}"
    assert all(re.search(r"[\u4e00-\u9fff]", zh) for _, _, zh in results)


# Audit kinds passed on unchanged by a helper (a variable), with where the literal kinds come from instead.
_AUDIT_PASS_THROUGH = {"kind"}


def _audit_kinds() -> set[str]:
    """Every audit kind the server writes: the first argument of ``<audit log>.record(...)`` and of
    ``<refusals>.note(...)``, the second of the recording routes' ``_audit(request, ...)``; a prefix
    joined with ``'a' if ... else 'b'`` gives both kinds. An argument of another shape fails, so a
    new way of naming kinds is not silently missed."""
    kinds: set[str] = set()
    unread = []
    for path in [*sorted((ROOT / "acl").rglob("*.py")), *sorted((ROOT / "gateway").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute):  # audit.record(kind, ...), refusals.note(kind, ...)
                owner = ast.unparse(node.func.value).lower()
                if not (node.func.attr == "record" and "audit" in owner) and not (
                    node.func.attr == "note" and "refusals" in owner
                ):
                    continue
                pos = 0
            elif getattr(node.func, "id", "") == "_audit" and ast.unparse(node.args[0]) == "request":
                pos = 1  # the recording routes' _audit(request, kind, ...)
            else:
                continue
            arg = node.args[pos]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                kinds.add(arg.value)
            elif (
                isinstance(arg, ast.BinOp)
                and isinstance(arg.left, ast.Constant)
                and isinstance(arg.right, ast.IfExp)
                and isinstance(arg.right.body, ast.Constant)
                and isinstance(arg.right.orelse, ast.Constant)
            ):
                kinds |= {arg.left.value + arg.right.body.value, arg.left.value + arg.right.orelse.value}
            elif not (isinstance(arg, ast.Name) and arg.id in _AUDIT_PASS_THROUGH):
                unread.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(arg)}")
    assert not unread, f"audit kinds this walk cannot read: {unread}"
    return kinds


def test_every_audit_kind_has_a_name_in_the_admin_console() -> None:
    kinds = _audit_kinds()
    assert {"login", "policy_change", "recording.export", "alarm_source_disabled", "login_failed"} <= kinds
    text = (STATIC / "admin-i18n.js").read_text(encoding="utf-8")
    listed = set(re.findall(r'"([a-z0-9_.]+)"', text[text.index("AUDIT_KINDS = [") : text.index("];")]))
    assert listed == kinds, {"not offered": sorted(kinds - listed), "not written": sorted(listed - kinds)}
    zh, en = blocks(STATIC / "admin-i18n.js")
    missing = {k for k in kinds if "audit_" + k.replace(".", "_") not in zh}
    assert not missing, f"audit kinds without a zh-CN name: {sorted(missing)}"
    assert {"audit_" + k.replace(".", "_") for k in kinds} <= en


@pytest.mark.skipif(shutil.which("node") is None, reason="node (installed with the consoles' npm packages) is needed")
def test_incident_actors_are_named_in_chinese(tmp_path: Path) -> None:
    """The gateway's own actors in an incident's history (``source:<name>`` for an alarm system,
    ``follow`` for cameras added while following a bus) read in Chinese; a user's name is shown as is."""
    script = tmp_path / "actors.mjs"
    script.write_text(
        "globalThis.localStorage = { getItem: () => null, setItem: () => {} };\n"
        f"const {{ actorName }} = await import({json.dumps((STATIC / 'i18n.js').as_uri())});\n"
        "console.log(JSON.stringify(['source:bus-gps', 'follow', '', 'wang.li'].map(actorName)));\n",
        encoding="utf-8",
    )
    run = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60, check=True)
    source, follow, nobody, user = json.loads(run.stdout)
    assert "bus-gps" in source and re.search(r"[\u4e00-\u9fff]", source)
    assert re.search(r"[\u4e00-\u9fff]", follow) and "follow" not in follow
    assert re.search(r"[\u4e00-\u9fff]", nobody)
    assert user == "wang.li"
