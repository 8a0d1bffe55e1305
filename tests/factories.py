"""Test data: accounts and gateways with fresh IDs for every test."""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.security import hash_password
from domain.enrollment import CancelApplicationInput, GatewayView
from store import enrollment as enrollment_store
from store.tables import Account, Gateway, PointSignup, PointsMember

_ALPHABET = string.ascii_uppercase + string.digits
PASSWORD = "Test-Password-123"
_HASH = hash_password(PASSWORD)


def random_id(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass
class Customer:
    account_id: str
    email: str
    name: str
    eligible_gateway: str
    eligible_pcs: str
    other_gateway: str  # same account, battery unit not in use


def add_customer(
    engine: Engine,
    *,
    holder_type: str = "individual",
    name: str = "髙橋 太郎",
    second_eligible: bool = False,
) -> Customer:
    email = f"customer-{random_id(10).lower()}@example.com"
    gw1, gw2 = random_id(12), random_id(12)
    pcs1 = random_id(8)
    account = enrollment_store.create_account(
        engine,
        Account(email=email, password_hash=_HASH, display_name=name, holder_type=holder_type),
        [
            Gateway(
                account_id="",
                gateway_id=gw1,
                pcs_serial=pcs1,
                model="KPBP-A",
                pv_unit_in_use=True,
                battery_unit_in_use=True,
            ),
            Gateway(
                account_id="",
                gateway_id=gw2,
                pcs_serial=random_id(8),
                model="SMART_PV_MULTI",
                pv_unit_in_use=True,
                battery_unit_in_use=second_eligible,
            ),
        ],
    )
    return Customer(account.id, email, name, gw1, pcs1, gw2)


def add_points_member(engine: Engine, customer: Customer, *, status: str = "active") -> None:
    """A スマイルeポイント member on the customer's eligible gateway, as STEP6 leaves it
    (``status="cancelled"``: the tombstone a cancelled membership leaves)."""
    now = datetime.now(UTC)
    signup_id = uuid.uuid4().hex
    with Session(engine) as session:
        session.add(
            PointSignup(
                id=signup_id,
                workflow_id=f"points-signup-{signup_id}",
                email=customer.email,
                status="registered",
                closed_at=now,
            )
        )
        session.flush()
        session.add(
            PointsMember(
                signup_id=signup_id,
                email=customer.email,
                gateway_id=customer.eligible_gateway,
                account_id=customer.account_id,
                service="omron_monitoring",
                name="髙橋 太郎",
                furigana="タカハシ タロウ",
                postal_code="100-0001",
                prefecture="東京都",
                address="千代田区千代田1-1",
                phone="0312345678",
                password_hash=_HASH,
                status=status,
                registered_at=now,
                cancelled_at=now if status == "cancelled" else None,
            )
        )
        session.commit()


def cancel_application(
    engine: Engine, customer: Customer, key: str, at: datetime | None = None
) -> list[GatewayView]:
    """解約 of the customer's eligible gateway, as the journey's store activity asks it."""
    return enrollment_store.cancel_application(
        engine,
        CancelApplicationInput(
            key=key,
            account_id=customer.account_id,
            gateway_id=customer.eligible_gateway,
            cancelled_at=at or datetime.now(UTC),
        ),
    )
