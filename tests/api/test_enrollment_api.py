"""A customer's circle journey through the HTTP API, end to end, reading the real mail."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from api.security import SessionTokens
from domain.mail import MailKind
from store.tables import OutboxMail
from tests.api.conftest import SYSTEM_KEY, Stack
from tests.factories import PASSWORD, add_customer
from tests.history import closed_mail_activities, completed_mail, kinds
from tests.pii import assert_absent, history_bytes
from tests.waiting import eventually, mails

FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}


async def test_walk_through_the_circle_journey(stack: Stack) -> None:
    await walk_through(stack)


async def test_walk_through_with_the_store_on_postgresql(stack_on_postgresql: Stack) -> None:
    await walk_through(stack_on_postgresql)


async def walk_through(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)

    journey = await stack.start_journey(auth)
    assert journey["stage"] == "awaiting_consent"
    assert journey["workflow_id"] == f"enrollment-{customer.account_id}"
    assert customer.email not in journey["workflow_id"]

    [invitation] = await mails(stack.sink, 1)
    assert invitation.envelope_to == [customer.email]
    assert "お申込みのご案内" in invitation.subject
    assert f"{customer.name} 様" in invitation.text

    # Starting again resumes the same journey; no second invitation (proved at the end,
    # from the closed journey's history).
    again = await stack.call("POST", "/v1/journey", headers=auth)
    assert again.json()["stage_entered_at"] == journey["stage_entered_at"]

    terms = (await stack.call("GET", "/v1/terms")).json()
    assert len(terms["content_sha256"]) == 64 and "第2条" in terms["text"]
    consent = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": True, "terms_version": terms["version"]},
    )
    assert consent.status_code == 200, consent.text
    assert consent.json()["stage"] == "awaiting_application"

    gateways = (await stack.call("GET", "/v1/journey/gateways", headers=auth)).json()["gateways"]
    assert {g["gateway_id"]: (g["eligible"], g["reasons"]) for g in gateways} == {
        customer.eligible_gateway: (True, []),
        customer.other_gateway: (False, ["battery_unit_not_in_use"]),
    }

    not_eligible = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.other_gateway},
    )
    assert not_eligible.status_code == 409
    assert not_eligible.json()["detail"][0]["code"] == "gateway_not_eligible"

    applied = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway.translate(FULLWIDTH)},
    )
    assert applied.status_code == 201, applied.text
    done = applied.json()
    assert (done["gateway_id"], done["pcs_serial"]) == (
        customer.eligible_gateway,
        customer.eligible_pcs,
    )
    assert done["points_signup_url"] == stack.settings.points_signup_url

    complete = (await mails(stack.sink, 2))[1]
    assert complete.envelope_to == [customer.email]
    assert "お申込み完了のお知らせ" in complete.subject
    assert f"申込完了日時： {done['applied_at_jst']}" in complete.text
    assert f"ゲートウェイID： {customer.eligible_gateway}" in complete.text
    assert f"パワーコンディショナ製造番号： {customer.eligible_pcs}" in complete.text
    assert stack.settings.points_signup_url in complete.links

    # The same request again is a retry: the first answer, no second application.
    twice = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway},
    )
    assert (twice.status_code, twice.json()) == (201, done)
    # A new request (its own Idempotency-Key) for the same gateway is refused.
    again = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers={**auth, "Idempotency-Key": "second-application"},
        json={"gateway_id": customer.eligible_gateway},
    )
    assert (again.status_code, again.json()["detail"][0]["code"]) == (
        409,
        "gateway_already_applied",
    )

    status = (await stack.call("GET", "/v1/journey", headers=auth)).json()
    assert status["stage"] == "awaiting_points_signup"
    assert status["next_reminder_at"] is not None

    cancelled = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=auth
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["stage"] == "withdrawn"
    cancellation = (await mails(stack.sink, 3))[2]
    assert "解約" in cancellation.subject and customer.eligible_gateway in cancellation.text

    # What Temporal keeps holds no personal data: not in the ID, the search attributes,
    # or anywhere in the history (inputs, results, failures).
    handle = stack.client.get_workflow_handle(journey["workflow_id"])
    # Withdrawn, the journey closes once its mails went out: its complete history and the
    # sink agree on exactly these three.
    assert kinds(await closed_mail_activities(handle)) == [
        MailKind.INVITATION,
        MailKind.APPLICATION_COMPLETE,
        MailKind.APPLICATION_CANCELLED,
    ]
    assert [m.envelope_to for m in stack.sink.received] == [[customer.email]] * 3
    history = history_bytes(await handle.fetch_history())
    assert b"EnrollmentWorkflow" in history and b"binary/encrypted" in history
    assert_absent(history, customer.email, customer.name, PASSWORD, customer.eligible_pcs)
    described = await handle.describe()
    assert customer.email not in json.dumps(
        {k.name: str(v) for k, v in described.typed_search_attributes}
    )


async def test_refusals_map_to_statuses_and_codes(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)

    assert (await stack.call("GET", "/v1/journey")).status_code == 401
    # A well-signed token for an account the store does not hold (removed since): 401 on
    # the status read (its one statement checks the account) as on every other route.
    secret = stack.settings.secret_key.get_secret_value()
    ghost = SessionTokens(secret, 3600).issue("no-such-account")
    body = {
        "agree": True,
        "terms_version": stack.settings.circle_terms_version,
        "gateway_id": customer.eligible_gateway,
    }
    gateway_path = f"/v1/journey/applications/{customer.eligible_gateway}"
    for method, path in (
        ("GET", "/v1/journey"),
        ("GET", "/v1/journey/gateways"),
        ("POST", "/v1/journey"),
        ("POST", "/v1/journey/consent"),
        ("POST", "/v1/journey/applications"),
        ("DELETE", gateway_path),
    ):
        refused = await stack.call(
            method, path, headers={"Authorization": f"Bearer {ghost}"}, json=body
        )
        assert (refused.status_code, refused.json()["detail"][0]["code"]) == (
            401,
            "not_authenticated",
        ), (method, path)
    for method, path in (
        ("GET", "/v1/journey"),
        ("POST", "/v1/journey/consent"),
        ("POST", "/v1/journey/applications"),
        ("DELETE", gateway_path),
    ):
        not_started = await stack.call(method, path, headers=auth, json=body)
        assert (not_started.status_code, not_started.json()["detail"][0]["code"]) == (
            404,
            "journey_not_found",
        ), (method, path)
    await stack.call("POST", "/v1/journey", headers=auth)

    early = await stack.call(
        "POST",
        "/v1/journey/applications",
        headers=auth,
        json={"gateway_id": customer.eligible_gateway},
    )
    assert (early.status_code, early.json()["detail"][0]["code"]) == (409, "wrong_stage")

    outdated = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": True, "terms_version": "2022-07-01"},
    )
    assert (outdated.status_code, outdated.json()["detail"][0]["code"]) == (
        422,
        "terms_version_outdated",
    )

    bad_id = await stack.call(
        "POST", "/v1/journey/applications", headers=auth, json={"gateway_id": "ＧＷ-1"}
    )
    assert bad_id.status_code == 422
    [item] = bad_id.json()["detail"]
    assert item["loc"] == ["body", "gateway_id"] and item["code"] == "invalid_gateway_id"
    assert "ＧＷ-1" not in bad_id.text and "半角英数字12桁" in item["message"]

    bad_path = await stack.call("DELETE", "/v1/journey/applications/nope", headers=auth)
    assert (bad_path.status_code, bad_path.json()["detail"][0]["loc"]) == (
        422,
        ["path", "gateway_id"],
    )

    declined = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": False, "terms_version": "2025-03-26"},
    )
    assert declined.json()["stage"] == "declined"
    closed = await stack.call(
        "POST",
        "/v1/journey/consent",
        headers=auth,
        json={"agree": True, "terms_version": "2025-03-26"},
    )
    assert (closed.status_code, closed.json()["detail"][0]["code"]) == (409, "journey_closed")

    # A declined journey can be started anew (eligibility is checked again).
    restarted = await stack.call("POST", "/v1/journey", headers=auth)
    assert restarted.json()["stage"] == "awaiting_consent"


async def test_login_and_validation_never_echo_secrets(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    wrong = await stack.call(
        "POST", "/v1/session", json={"user_id": customer.email, "password": "Wrong-Secret-99"}
    )
    unknown = await stack.call(
        "POST", "/v1/session", json={"user_id": "nobody@example.com", "password": "Wrong-Secret-99"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "Wrong-Secret-99" not in wrong.text

    rejected = await stack.call(
        "POST",
        "/v1/system/accounts",
        headers={"X-System-Key": SYSTEM_KEY},
        json={
            "email": "not-an-address",
            "password": "Sh0rt!",
            "display_name": "x",
            "holder_type": "individual",
            "gateways": [
                {
                    "gateway_id": "ＧＷ１",
                    "pcs_serial": "12345678",
                    "model": "KPBP-A",
                    "pv_unit_in_use": True,
                    "battery_unit_in_use": True,
                }
            ],
        },
    )
    assert rejected.status_code == 422
    codes = {tuple(i["loc"]): i["code"] for i in rejected.json()["detail"]}
    assert codes == {
        ("body", "email"): "invalid_email",
        ("body", "password"): "invalid_input",
        ("body", "gateways", 0, "gateway_id"): "invalid_gateway_id",
    }
    for echoed in ("Sh0rt!", "not-an-address", "ＧＷ１"):
        assert echoed not in rejected.text


async def test_monitoring_system_announces_accounts(stack: Stack) -> None:
    key = {"X-System-Key": SYSTEM_KEY}
    gateway = {
        "gateway_id": "ｇｗ９９９９９９９９９９",
        "pcs_serial": "pcs99999",
        "model": "KPBP-A",
        "pv_unit_in_use": True,
        "battery_unit_in_use": True,
    }
    body: dict[str, Any] = {
        "email": "Announced.Customer@Example.com",
        "password": "Announced-Pass-2026",
        "display_name": "告知 太郎",
        "holder_type": "individual",
        "gateways": [gateway],
    }
    assert (await stack.call("POST", "/v1/system/accounts", json=body)).status_code == 403
    wrong_key = await stack.call(
        "POST", "/v1/system/accounts", json=body, headers={"X-System-Key": "nope"}
    )
    assert wrong_key.status_code == 403

    created = await stack.call("POST", "/v1/system/accounts", json=body, headers=key)
    assert created.status_code == 201, created.text
    assert created.json()["journey"] == "started"
    assert "announced" not in created.json()["workflow_id"].lower()
    [mail] = await mails(stack.sink, 1)
    assert mail.envelope_to == ["announced.customer@example.com"]

    login = await stack.call(
        "POST",
        "/v1/session",
        json={"user_id": "announced.customer@example.com", "password": "Announced-Pass-2026"},
    )
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    gateways = (await stack.call("GET", "/v1/journey/gateways", headers=auth)).json()["gateways"]
    assert [(g["gateway_id"], g["pcs_serial"]) for g in gateways] == [("GW9999999999", "PCS99999")]

    # The same announcement again is the monitoring system retrying: the same answer, 200.
    again = await stack.call("POST", "/v1/system/accounts", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.json() == created.json()
    # A different announcement for a known e-mail is a conflict, whatever differs.
    for different in (
        {**body, "password": "Another-Pass-2026"},
        {**body, "display_name": "別人 次郎"},
        {**body, "gateways": [{**gateway, "battery_unit_in_use": False}]},
    ):
        duplicate = await stack.call("POST", "/v1/system/accounts", json=different, headers=key)
        assert (duplicate.status_code, duplicate.json()["detail"][0]["code"]) == (
            409,
            "account_exists",
        )

    corporate = {
        **body,
        "email": "corp@example.com",
        "holder_type": "corporate",
        "gateways": [{**gateway, "gateway_id": "GW8888888888"}],
    }
    created = await stack.call("POST", "/v1/system/accounts", json=corporate, headers=key)
    handle = stack.client.get_workflow_handle(created.json()["workflow_id"])
    result = await handle.result()
    assert result["stage"] == "ineligible" and result["ineligible_reason"] == "corporate_account"
    # No invitation for the corporate account: its closed history asked for no mail.
    assert await closed_mail_activities(handle) == []
    assert [m.envelope_to for m in stack.sink.received] == [["announced.customer@example.com"]]


async def test_operators_find_journeys_by_stage(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    workflow_id = (await stack.call("POST", "/v1/journey", headers=auth)).json()["workflow_id"]
    key = {"X-System-Key": SYSTEM_KEY}

    async def listed() -> dict[str, Any] | None:
        answer = await stack.call(
            "GET", "/v1/system/journeys", params={"stage": "awaiting_consent"}, headers=key
        )
        rows: dict[str, dict[str, Any]] = {r["workflow_id"]: r for r in answer.json()["journeys"]}
        return rows.get(workflow_id)

    row = await eventually(listed, what="the journey listed (visibility lags)")
    assert (row["stage"], row["reminder_count"], row["needs_operator"]) == (
        "awaiting_consent",
        0,
        False,
    )
    flagged = await stack.call(
        "GET", "/v1/system/journeys", params={"needs_operator": "true"}, headers=key
    )
    assert workflow_id not in {r["workflow_id"] for r in flagged.json()["journeys"]}
    assert (await stack.call("GET", "/v1/system/journeys")).status_code == 403


async def test_a_deferred_mail_is_retried_by_temporal_and_arrives_once(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    stack.sink.handler.scripted_replies.append("451 4.3.0 try again later")
    started = (await stack.call("POST", "/v1/journey", headers=auth)).json()
    handle = stack.client.get_workflow_handle(started["workflow_id"])
    # The history records the mail activity as completed, on its second attempt: there is
    # no attempt after that, so what the sink and the outbox hold now is final.
    [invitation] = await completed_mail(handle, MailKind.INVITATION)
    assert invitation.attempt == 2
    assert len(stack.sink.received) == 1
    with Session(stack.engine) as session:
        row = session.get(OutboxMail, invitation.request.key)
    assert row is not None and (row.status, row.attempts) == ("sent", 2)


async def test_without_a_worker_the_api_answers_503(stack_without_worker: Stack) -> None:
    stack = stack_without_worker
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    response = await stack.call("POST", "/v1/journey", headers=auth)
    assert response.status_code == 503
    assert response.json()["detail"][0]["code"] == "worker_unavailable"
