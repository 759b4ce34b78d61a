"""One spelling per district: ``上海市闵行区``, ``闵行区``, ``Minhang`` and ``Minhang District`` are the same place.

Vehicle registrations arrive from several systems, each with its own way of naming where a truck is
registered. The location rule compares a truck's home with ``acl.home_district``; a spelling it does
not recognise would make an own truck foreign (hidden outside) or, worse, the other way round.
Shanghai's districts are known by name and pinyin; other places keep their text (whitespace
trimmed), so ``江苏省苏州市`` stays foreign.
"""

from __future__ import annotations

import re

__all__ = ["SHANGHAI_DISTRICTS", "normalise_district", "same_district"]

# Shanghai's 16 districts: Chinese name -> pinyin (as on road signs and in English documents).
SHANGHAI_DISTRICTS: dict[str, str] = {
    "黄浦区": "huangpu",
    "徐汇区": "xuhui",
    "长宁区": "changning",
    "静安区": "jing'an",
    "普陀区": "putuo",
    "虹口区": "hongkou",
    "杨浦区": "yangpu",
    "闵行区": "minhang",
    "宝山区": "baoshan",
    "嘉定区": "jiading",
    "浦东新区": "pudong",
    "金山区": "jinshan",
    "松江区": "songjiang",
    "青浦区": "qingpu",
    "奉贤区": "fengxian",
    "崇明区": "chongming",
}
_BY_PINYIN = {p.replace("'", ""): zh for zh, p in SHANGHAI_DISTRICTS.items()}
_BY_STEM = {zh.removesuffix("新区").removesuffix("区"): zh for zh in SHANGHAI_DISTRICTS}
_CITY = re.compile(r"^(中国)?上海市?")
_LATIN_NOISE = re.compile(r"\b(new\s+)?(district|qu)\b|shanghai|[\s,.'’-]+", re.IGNORECASE)


def normalise_district(name: str) -> str:
    """The canonical name of a district: ``闵行区`` for any spelling of Minhang; other names trimmed."""
    text = " ".join(name.split())
    if not text:
        return ""
    if text.isascii():
        key = _LATIN_NOISE.sub("", text.lower())
        return _BY_PINYIN.get(key, text)
    zh = _CITY.sub("", text.replace(" ", ""))
    if zh in SHANGHAI_DISTRICTS:
        return zh
    return _BY_STEM.get(zh, text)


def same_district(a: str, b: str) -> bool:
    """Whether two names denote the same district."""
    return normalise_district(a) == normalise_district(b)
