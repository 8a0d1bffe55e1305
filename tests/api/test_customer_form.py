"""STEP 4's request model: the postal-code look-up (I/O) happens here, at the edge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.customer import CheckedAddress, CustomerForm, postal_code_prefecture

BASE = {
    "name": "笑顔 太郎",
    "furigana": "えがお たろう",
    "address": {"postal_code": "530-0001", "prefecture": "大阪府", "address": "大阪市1-2-3"},
    "phone": ["06", "1234", "5678"],
}


def test_postal_code_must_exist_and_match_the_prefecture() -> None:
    assert postal_code_prefecture("100-0001") == "東京都"
    assert postal_code_prefecture("000-0000") is None
    CheckedAddress(
        postal_code="５３０－０００１", prefecture="大阪府", address="大阪市北区梅田1-2-3"
    )
    for postal, prefecture, code in [
        ("000-0000", "東京都", "unknown_postal_code"),
        ("100-0001", "大阪府", "prefecture_mismatch"),
        ("100-0001", "トーキョー", "invalid_prefecture"),
    ]:
        with pytest.raises(ValidationError) as info:
            CheckedAddress(postal_code=postal, prefecture=prefecture, address="1-2-3")
        assert info.value.errors()[0]["ctx"]["error"].code == code


def test_installation_address() -> None:
    form = CustomerForm.model_validate(BASE)
    assert form.furigana == "エガオ\u3000タロウ" and form.installation_address is None
    with pytest.raises(ValidationError):
        CustomerForm.model_validate({**BASE, "installation_same_as_address": False})
    other = CustomerForm.model_validate(
        {
            **BASE,
            "installation_same_as_address": False,
            "installation_address": {
                "postal_code": "100-0001",
                "prefecture": "東京都",
                "address": "千代田1-1",
            },
        }
    )
    assert other.info().installation_address is not None
    # Same address: the installation address given anyway is dropped.
    same = CustomerForm.model_validate(
        {**BASE, "installation_address": other.model_dump()["installation_address"]}
    )
    assert same.info().installation_address is None
    assert "installation_same_as_address" not in same.info().model_dump()
