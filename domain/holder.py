"""Contracts of the rule "knowing the two IDs is not enough" (the points signup's STEP3).

A gateway ID and PCS serial are printed on the circle's completion screen and mail, so
whoever has seen them could register the household's one points membership under their
own e-mail. Hence:
- a signup whose e-mail is not the circle account's own is confirmed by the account holder
  (a mailed, single-use link, or the logged-in circle session) before it can register;
- the holder is told by mail whenever a membership is registered on their gateway;
- wrong gateway/serial pairs are limited per signup (then it is locked) and per gateway
  across signups (then the gateway is refused for a while, right pair or not).

The workflow never sees the holder's or the signup's e-mail, nor the confirmation token:
activities look them up by ID and derive the token from a server key and a stored salt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from domain.signup import GatewayMatch, HolderConfirmation

__all__ = ["HolderConfirmation"]  # re-exported: it belongs to the signup's view


class GatewayOutcome(StrEnum):
    MATCHED = "matched"
    WRONG_PAIR = "wrong_pair"  # not a confirmed application, or the serial is wrong
    GATEWAY_LOCKED = "gateway_locked"  # too many wrong pairs on this gateway lately
    ALREADY_MEMBER = "already_member"


class CheckGatewayInput(BaseModel):
    """STEP3's check. ``attempt_key`` makes a retried activity count a failure once."""

    signup_id: str
    attempt_key: str
    gateway_id: str
    pcs_serial: str
    at: datetime
    failures_per_day: int


class GatewayCheck(BaseModel):
    outcome: GatewayOutcome
    match: GatewayMatch | None = None


class AskHolderInput(BaseModel):
    signup_id: str
    gateway: GatewayMatch
    seq: int  # the signup's n-th request; a retry of the same one is idempotent
    asked_at: datetime
    ttl: timedelta
    asks_per_gateway_per_day: int


class HolderAsked(BaseModel):
    """What the workflow learns of a confirmation request: never the token."""

    needed: bool
    confirmation_id: str | None = None
    seq: int = 0
    expires_at: datetime | None = None


class HolderMailInput(BaseModel):
    key: str
    confirmation_id: str


class RegistrationNoticeInput(BaseModel):
    key: str
    signup_id: str
    account_id: str
    gateway_id: str
    registered_at: datetime


class HolderDecision(BaseModel):
    """The holder's answer, checked by the API (token hash or logged-in owner) first."""

    confirmation_id: str
    confirm: bool
    channel: Literal["mail_link", "circle_session"]


class RecordHolderDecisionInput(BaseModel):
    signup_id: str
    confirmation_id: str
    confirm: bool
    channel: str
    decided_at: datetime


class HolderState(BaseModel):
    """Answer of ``decide_holder`` and ``ask_holder_again``."""

    holder_confirmation: HolderConfirmation
    expires_at: datetime | None = None


def mask_email(email: str) -> str:
    """``taro@example.com`` → ``t***@example.com``: enough to recognise, not to reuse."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
