"""The API's public request and response models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictBool

from api.customer import CustomerForm
from domain.enrollment import EnrollmentStatus, GatewayEventKind, GatewayModel, GatewayView
from domain.jst import format_duration
from domain.signup import LinkStatus, Service
from domain.terms import TermsDocument
from domain.text import PlainText
from domain.values import EmailAddress, GatewayId, PcsSerial
from store.tables import Account, Gateway


class LoginRequest(BaseModel):
    user_id: str = Field(description="The monitoring account's user ID (its e-mail address)")
    password: str = Field(min_length=1, max_length=200, json_schema_extra={"format": "password"})


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    account_id: str


class AnnouncedGateway(BaseModel):
    gateway_id: GatewayId
    pcs_serial: PcsSerial
    model: GatewayModel
    # Strict: they decide eligibility; only JSON true/false count.
    pv_unit_in_use: StrictBool
    battery_unit_in_use: StrictBool


class AnnounceAccountRequest(BaseModel):
    """A monitoring account as the monitoring system announces it."""

    email: EmailAddress
    password: str = Field(min_length=8, max_length=200, json_schema_extra={"format": "password"})
    display_name: PlainText = Field(min_length=1, max_length=200)
    holder_type: Literal["individual", "corporate"]
    gateways: list[AnnouncedGateway] = Field(min_length=1)

    def rows(self, password_hash: str) -> tuple[Account, list[Gateway]]:
        """The store rows of this account (the API and ``cli.py seed-demo`` both add it)."""
        account = Account(
            email=self.email,
            password_hash=password_hash,
            display_name=self.display_name,
            holder_type=self.holder_type,
        )
        return account, [Gateway(account_id="", **g.model_dump()) for g in self.gateways]

    def repeated_gateway(self) -> int | None:
        """The index of the first gateway listed a second time, or None."""
        seen: set[str] = set()
        for index, gateway in enumerate(self.gateways):
            if gateway.gateway_id in seen:
                return index
            seen.add(gateway.gateway_id)
        return None


class AnnounceAccountResponse(BaseModel):
    account_id: str
    workflow_id: str
    journey: Literal["started", "pending"] = Field(
        description=(
            "started: the journey runs. pending: the account and its start are recorded, "
            "but the Temporal server could not be reached; a worker starts the journey as "
            "soon as it can, and nothing needs to be sent again."
        )
    )


class ConsentBody(BaseModel):
    # Strict: 0, "no" or "false" must not decline (declining ends the journey).
    agree: StrictBool = Field(description="true: 同意する, false: 同意しない")
    terms_version: PlainText = Field(
        description="The version the customer was shown (GET /v1/terms)"
    )


class ConsentResponse(BaseModel):
    stage: str
    decided_at: datetime


class ApplicationCompleted(BaseModel):
    """The 申込完了 screen: what the customer needs for the points signup."""

    gateway_id: str
    pcs_serial: str
    applied_at: datetime
    applied_at_jst: str = Field(description="2022/06/20 19:25 (JST)")
    points_signup_url: str


class CancelResponse(BaseModel):
    gateway_id: str
    cancelled_at: datetime
    stage: str


class JourneyResponse(EnrollmentStatus):
    workflow_id: str


class GatewayList(BaseModel):
    gateways: list[GatewayView]


class OperatorJourney(BaseModel):
    workflow_id: str
    run_status: str
    stage: str | None
    stage_entered_at: datetime | None
    reminder_count: int | None
    needs_operator: bool | None


class OperatorJourneyList(BaseModel):
    journeys: list[OperatorJourney]


# ---- スマイルeポイント signup -----------------------------------------------------------


class SignupRequest(BaseModel):
    email: EmailAddress = Field(description="半角英数字 (full-width is converted)")


class SignupRequested(BaseModel):
    """Always the same answer, registered address or not (the mail tells the difference)."""

    message: str

    @classmethod
    def for_link_ttl(cls, link_ttl: timedelta) -> SignupRequested:
        return cls(
            message="メールアドレスに会員登録するためのご案内メールを送信いたしました。"
            "この段階では、まだ会員登録は完了していません。"
            "メールに記載されているURLをクリックし、登録手続きを進めてください。"
            f"※URLの有効期限は{format_duration(link_ttl)}です。"
        )


class LinkToken(BaseModel):
    token: str = Field(
        min_length=20, max_length=200, description="The part after # in the mailed link"
    )


class LinkState(BaseModel):
    state: LinkStatus
    message: str = Field(description="Empty when valid, else the refusal's message")
    expires_at: datetime | None = None


class BeginBody(LinkToken):
    service: Service


class SignupSession(BaseModel):
    session: str = Field(description="Send as header X-Signup-Session on every later step")


class DocumentView(TermsDocument):
    """A document to agree to, with its text (the circle terms, the two signup documents)."""

    text: str


def _json_bool(value: object) -> object:
    """Only JSON true/false: a ``Literal[True]`` alone also takes 1 and 1.0 (1 == True)."""
    if not isinstance(value, bool):
        raise ValueError("not a boolean")
    return value


class AgreementBody(BaseModel):
    agree: Annotated[Literal[True], BeforeValidator(_json_bool)] = Field(
        description="上記について確認したので、同意します。"
    )
    service_terms_version: PlainText
    privacy_policy_version: PlainText


class GatewayBody(BaseModel):
    gateway_id: GatewayId
    pcs_serial: PcsSerial


class CustomerBody(CustomerForm):
    password: str = Field(max_length=200, json_schema_extra={"format": "password"})
    password_confirmation: str = Field(max_length=200, json_schema_extra={"format": "password"})


class RegisteredResponse(BaseModel):
    """STEP 6 (登録完了): 氏名 … 様 and the my-page address."""

    name: str
    gateway_id: str
    registered_at: datetime
    my_page_url: str


# ---- operators (/v1/operator) -------------------------------------------------------


class OperatorRow(BaseModel):
    """A journey or signup as the Temporal UI lists it, with why it is stuck."""

    workflow_id: str
    workflow_type: str
    run_status: str
    stage: str | None
    stage_entered_at: datetime | None
    reminder_count: int | None = Field(description="journey: reminders; signup: links+reminders")
    needs_operator: bool | None
    reasons: list[str] = Field(description="the stuck rules it meets (stuck=true)")
    next_action: str | None = Field(description="what an operator would do next")


class OperatorRowList(BaseModel):
    queries: list[str] = Field(description="the visibility queries run: paste into the UI")
    journeys: list[OperatorRow]


class OperatorActionBody(BaseModel):
    reason: PlainText = Field(
        min_length=1, max_length=500, description="why (kept in the audit and the history)"
    )


class OperatorActionResult(BaseModel):
    workflow_id: str
    action: str
    before_stage: str
    after_stage: str
    at: datetime
    detail: str
    audit_id: int


# ---- the スマイルeポイント member (api/routes/member.py) -----------------------------------


class MemberLoginRequest(BaseModel):
    email: EmailAddress = Field(description="The member's registered e-mail address")
    password: str = Field(min_length=1, max_length=200, json_schema_extra={"format": "password"})


class MemberLoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)


class AgreedDocumentView(BaseModel):
    document: str
    version: str
    agreed_at: datetime


class MemberView(BaseModel):
    """照会 (マイページ): the membership as the store has it."""

    email: str
    name: str
    gateway_id: str
    pcs_serial: str
    status: Literal["active", "suspended", "cancelled"]
    registered_at: datetime
    circle_cancelled_at: datetime | None = Field(
        description="when the gateway's circle application was cancelled (suspended since)"
    )
    documents: list[AgreedDocumentView] = Field(
        description="the documents agreed to at signup, at their versions (consent ledger)"
    )
    email_change_expires_at: datetime | None = Field(
        description="a change of e-mail waits for its link until then"
    )


class EmailChangeBody(BaseModel):
    new_email: EmailAddress = Field(description="半角英数字 (full-width is converted)")


class EmailChangeRequested(BaseModel):
    """The same answer whether the address is free or taken (the mail tells which)."""

    message: str


class EmailChangeDone(BaseModel):
    changed_at: datetime


class MemberCancelBody(BaseModel):
    password: str = Field(
        min_length=1,
        max_length=200,
        json_schema_extra={"format": "password"},
        description="asked again: 退会 cannot be undone (no re-join)",
    )


class MemberCancelled(BaseModel):
    cancelled_at: datetime
    message: str


class SuspendedMemberRow(BaseModel):
    member_ref: str = Field(description="the member's opaque ID (its workflow is member-<ref>)")
    gateway_id: str
    circle_cancelled_at: datetime


class GatewayEventBody(BaseModel):
    """A gateway change the monitoring system reports (POST
    /v1/system/accounts/{account_id}/gateways). ``event_id`` makes it idempotent."""

    event_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="unique per event"
    )
    kind: GatewayEventKind
    gateway_id: GatewayId = Field(description="the gateway the event is about (added: the new one)")
    occurred_at: datetime
    new_gateway: AnnouncedGateway | None = Field(
        default=None, description="added, exchanged: the gateway now in place"
    )
    pv_unit_in_use: StrictBool | None = Field(default=None, description="units_changed")
    battery_unit_in_use: StrictBool | None = Field(default=None, description="units_changed")


class GatewayEventResponse(BaseModel):
    event_id: str
    # False: this event ID was recorded before (nothing changed again).
    recorded: bool
    # signalled: the running journey re-checks eligibility; not_running: recorded only.
    journey: Literal["signalled", "not_running"]
