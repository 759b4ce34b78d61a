"""District names: every spelling of a Shanghai district is one name; other places keep theirs."""

from __future__ import annotations

import pytest

from camera_registry.districts import normalise_district, same_district
from camera_registry.schemas import VehicleIn


@pytest.mark.parametrize(
    "spelling",
    [
        "闵行区",
        "上海市闵行区",
        "上海闵行区",
        " 上海市 闵行区 ",
        "闵行",
        "Minhang",
        "minhang district",
        "Shanghai Minhang",
    ],
)
def test_every_spelling_of_minhang_is_minhang(spelling: str) -> None:
    assert normalise_district(spelling) == "闵行区"
    assert same_district(spelling, "Minhang District")


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("Pudong New District", "浦东新区"), ("Jing'an", "静安区"), ("上海市嘉定区", "嘉定区"), ("徐汇", "徐汇区")],
)
def test_other_shanghai_districts(name: str, canonical: str) -> None:
    assert normalise_district(name) == canonical


def test_places_elsewhere_stay_as_written_and_differ_from_the_district() -> None:
    assert normalise_district(" 江苏省苏州市 ") == "江苏省苏州市"
    assert normalise_district("Suzhou") == "Suzhou"
    assert normalise_district("") == ""
    assert not same_district("江苏省苏州市", "闵行区")
    assert not same_district("嘉定区", "Minhang")


def test_vehicle_records_are_stored_with_the_canonical_name() -> None:
    v = VehicleIn.model_validate({"id": "t", "kind": "truck", "plate": "沪B1", "home_district": "上海市闵行区"})
    assert v.home_district == "闵行区"
