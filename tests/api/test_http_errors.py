"""Every error a client can get has the documented shape and a stable code.

The app runs in-process with its real store and a real dev server; the checks here are
about the HTTP layer, so most need no worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import Session, select

from api.errors import ApiError
from domain.errors import ErrorCode
from domain.signup import LinkStatus
from store.tables import Consent
from tests.api.conftest import Stack
from tests.factories import add_customer

SECRET = "Do-Not-Echo-Me-42!"


def only_error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    [item] = body["detail"]
    assert set(body) == {"detail"} and set(item) == {"loc", "code", "message"}
    assert item["message"] and SECRET not in response.text
    return response.status_code, item["code"]


async def test_http_level_errors_have_our_shape(stack: Stack) -> None:
    http = stack.http
    malformed = await http.post(
        "/v1/session", content=b'{"user_id": ', headers={"Content-Type": "application/json"}
    )
    assert only_error(malformed) == (400, "malformed_body")
    assert only_error(await http.get("/v1/no-such-route")) == (404, "route_not_found")
    wrong_method = await http.delete("/v1/terms")
    assert only_error(wrong_method) == (405, "method_not_allowed")
    assert "GET" in wrong_method.headers["Allow"]
    as_text = await http.post(
        "/v1/session",
        content=b'{"user_id": "a@example.com", "password": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert only_error(as_text) == (415, "unsupported_media_type")
    echoed = await http.post("/v1/session", json={"user_id": "a", "password": SECRET * 20})
    assert echoed.status_code == 422 and SECRET not in echoed.text


async def test_bodies_over_the_limit_are_refused_unparsed(stack: Stack) -> None:
    limit = stack.settings.max_request_body_bytes
    big = b'{"user_id": "' + b"a" * limit + b'", "password": "x"}'
    declared = await stack.http.post(
        "/v1/session", content=big, headers={"Content-Type": "application/json"}
    )
    assert only_error(declared) == (413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = await stack.http.post(
        "/v1/session", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert only_error(streamed) == (413, "body_too_large")


@pytest.mark.parametrize("agree", [0, 1, "no", "false", "true", None])
async def test_a_consent_decides_only_on_a_json_boolean(stack: Stack, agree: object) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    await stack.call("POST", "/v1/journey", headers=auth)
    answered = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": agree, "terms_version": stack.settings.circle_terms_version},
    )
    assert answered.status_code == 422, answered.text
    assert answered.json()["detail"][0]["loc"] == ["body", "agree"]
    journey = await stack.call("GET", "/v1/journey", headers=auth)
    assert journey.json()["stage"] == "awaiting_consent"  # nothing changed
    with Session(stack.engine) as session:
        assert not session.exec(
            select(Consent).where(Consent.account_id == customer.account_id)
        ).all()


def test_api_errors_take_their_status_from_the_table() -> None:
    assert ApiError(ErrorCode.LINK_EXPIRED).status == 410
    with pytest.raises(ValueError):
        ApiError("not_a_code")


def test_link_states_are_valid_or_an_error_code() -> None:
    codes = {code.value for code in ErrorCode}
    assert {state.value for state in LinkStatus} - codes == {"valid"}
