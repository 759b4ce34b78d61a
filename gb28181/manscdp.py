"""MANSCDP XML bodies (GB/T 28181 appendix A): reading devices' messages safely, writing queries.

Devices send GB2312/GBK as often as UTF-8. A body with a document type or entity declaration is
refused outright (no entity expansion, ever); sizes are bounded by the SIP parser and here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = ["CatalogItem", "ManscdpError", "build", "catalog_items", "parse", "query"]

_MAX_BODY = 48 * 1024
_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_-]{1,20})[\"'][^>]*\?>", re.I)
_ENCODINGS = {"gb2312": "gbk", "gbk": "gbk", "gb18030": "gb18030", "utf-8": "utf-8", "utf8": "utf-8"}


class ManscdpError(ValueError):
    """A body we refuse (malformed, a DTD, too big, an unknown encoding)."""


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One catalog entry (a channel, or a grouping node)."""

    device_id: str
    name: str
    manufacturer: str
    model: str
    civil_code: str
    address: str
    parent_id: str
    status: str  # "ON" / "OFF" as devices write it (case varies)


def parse(body: bytes) -> ET.Element:
    """The root element of a MANSCDP body; raises :class:`ManscdpError`."""
    if len(body) > _MAX_BODY:
        raise ManscdpError("body too large")
    if b"<!" in body:  # DOCTYPE, ENTITY, CDATA, comments: no device needs them; entities are an attack
        raise ManscdpError("declarations not allowed")
    m = _DECL.match(body)
    enc = _ENCODINGS.get(m.group(1).decode().lower()) if m else "utf-8"
    if enc is None:
        raise ManscdpError("unsupported encoding")
    text = body[m.end() :] if m else body
    try:
        # S314: declarations (and so entities) were refused above; what is left is plain elements.
        root = ET.fromstring(text.decode(enc, "replace"))  # noqa: S314
    except ET.ParseError:
        raise ManscdpError("malformed XML") from None
    return root


def _text(el: ET.Element, tag: str, limit: int = 128) -> str:
    found = el.find(tag)
    return (found.text or "").strip()[:limit] if found is not None else ""


def catalog_items(root: ET.Element, limit: int) -> tuple[int, list[CatalogItem]]:
    """(SumNum, the items of this message, at most ``limit``)."""
    try:
        total = int(_text(root, "SumNum") or "0")
    except ValueError:
        total = 0
    items: list[CatalogItem] = []
    dl = root.find("DeviceList")
    for el in dl.findall("Item") if dl is not None else []:
        if len(items) >= limit:
            break
        did = _text(el, "DeviceID", 20)
        if not re.fullmatch(r"[0-9]{20}", did):
            continue
        items.append(
            CatalogItem(
                device_id=did,
                name=_text(el, "Name", 200) or did,
                manufacturer=_text(el, "Manufacturer", 64),
                model=_text(el, "Model", 64),
                civil_code=_text(el, "CivilCode", 20),
                address=_text(el, "Address", 200),
                parent_id=_text(el, "ParentID", 200),
                status=_text(el, "Status", 8).upper(),
            )
        )
    return max(total, 0), items


def build(kind: str, cmd: str, sn: int, device_id: str, fields: str = "") -> bytes:
    """A MANSCDP body: ``<kind><CmdType/><SN/><DeviceID/>fields</kind>`` (``fields`` already escaped)."""
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\r\n<{kind}>\r\n<CmdType>{escape(cmd)}</CmdType>\r\n'
        f"<SN>{sn}</SN>\r\n<DeviceID>{escape(device_id)}</DeviceID>\r\n{fields}</{kind}>\r\n"
    )
    return xml.encode("utf-8")


def query(cmd: str, sn: int, device_id: str) -> bytes:
    """A ``<Query>`` (Catalog, DeviceInfo, DeviceStatus)."""
    return build("Query", cmd, sn, device_id)
