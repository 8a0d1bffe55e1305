"""Hostile and odd input gets a clear 4xx field error and changes nothing (issue 6)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlmodel import Session, func, select

from store.tables import Account, Gateway, PointSignup
from tests.api.conftest import SYSTEM_KEY, Stack

KEY = {"X-System-Key": SYSTEM_KEY}


def account(**overrides: Any) -> dict[str, Any]:
    gateway = {
        "gateway_id": "GW7777777777",
        "pcs_serial": "PCS77777",
        "model": "KPBP-A",
        "pv_unit_in_use": True,
        "battery_unit_in_use": True,
    }
    body = {
        "email": "hostile@example.com",
        "password": "Hostile-Pass-2026",
        "display_name": "告知 太郎",
        "holder_type": "individual",
        "gateways": [gateway],
    }
    return {**body, **overrides}


def rows(stack: Stack) -> tuple[int, int, int]:
    with Session(stack.engine) as session:
        return (
            session.exec(select(func.count()).select_from(Account)).one(),
            session.exec(select(func.count()).select_from(Gateway)).one(),
            session.exec(select(func.count()).select_from(PointSignup)).one(),
        )


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("display_name", "悪意\r\nBcc: victim@example.net", "control_character"),
        ("display_name", "名前\u202e逆順", "control_character"),
        ("email", "idn@bücher.example", "invalid_email"),
        ("email", "名前@example.net", "invalid_email"),
    ],
)
async def test_announcement_with_hostile_text_is_refused(
    stack: Stack, field: str, value: str, code: str
) -> None:
    before = rows(stack)
    response = await stack.call(
        "POST", "/v1/system/accounts", json=account(**{field: value}), headers=KEY
    )
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert (item["loc"], item["code"]) == (["body", field], code)
    assert "victim" not in response.text and "bücher" not in response.text
    assert rows(stack) == before and stack.sink.received == []


async def test_the_same_gateway_twice_is_a_field_error(stack: Stack) -> None:
    body = account()
    twice = {
        **body["gateways"][0],
        "gateway_id": "ｇｗ７７７７７７７７７７",
    }  # the same, full-width
    other = {**body["gateways"][0], "gateway_id": "GW7777777778"}
    before = rows(stack)
    response = await stack.call(
        "POST",
        "/v1/system/accounts",
        json={**body, "gateways": [*body["gateways"], other, twice]},
        headers=KEY,
    )
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert item["loc"] == ["body", "gateways", 2, "gateway_id"]
    assert item["code"] == "gateway_listed_twice"
    assert rows(stack) == before


async def test_a_gateway_id_with_a_circled_digit_is_refused(stack: Stack) -> None:
    gateway = {**account()["gateways"][0], "gateway_id": "ABCDEF12345①"}
    response = await stack.call(
        "POST", "/v1/system/accounts", json=account(gateways=[gateway]), headers=KEY
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "gateways", 0, "gateway_id"]
    assert response.json()["detail"][0]["code"] == "invalid_gateway_id"


@pytest.mark.parametrize("email", ["idn@bücher.example", "ｉｄｎ＠ｂüｃｈｅｒ.example"])
async def test_signup_with_an_address_mail_cannot_reach_is_refused_at_once(
    stack: Stack, email: str
) -> None:
    before = rows(stack)
    started = time.monotonic()
    response = await stack.call("POST", "/v1/points/signups", json={"email": email})
    assert time.monotonic() - started < 5  # not a 500 after the 15 s update timeout
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    assert (item["loc"], item["code"]) == (["body", "email"], "invalid_email")
    assert "日本語" in item["message"]
    assert rows(stack) == before and stack.sink.received == []
