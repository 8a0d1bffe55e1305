"""Value types for identifiers customers type in: gateway ID, PCS serial, e-mail address.

Customers type on Japanese keyboards, so ``ＧＷ１２３…`` (full-width) is common. The width is
converted (``domain.text.to_half_width``), surrounding spaces are dropped, and what is left
must be ASCII before it is upper-cased (``"ſ".upper()`` is ``"S"``) and checked against an
explicit ``[0-9A-Z]`` class: ``\\d`` would also accept full-width and Arabic-Indic digits,
and NFKC would turn ① into 1 and Ⅻ into XII.
"""

from __future__ import annotations

import re
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

from domain.errors import ErrorCode, FieldRuleError
from domain.text import to_half_width

_ALNUM = re.compile(r"[0-9A-Z]+")


def _fixed_alnum(raw: str, length: int, code: ErrorCode) -> str:
    text = to_half_width(raw).strip()
    if not text.isascii():
        raise FieldRuleError(code)
    text = text.upper()
    if len(text) != length or not _ALNUM.fullmatch(text):
        raise FieldRuleError(code)
    return text


def parse_gateway_id(raw: str) -> str:
    """Return the canonical gateway ID or raise ``FieldRuleError('invalid_gateway_id')``."""
    return _fixed_alnum(raw, 12, ErrorCode.INVALID_GATEWAY_ID)


def parse_pcs_serial(raw: str) -> str:
    """Return the canonical PCS serial or raise ``FieldRuleError('invalid_pcs_serial')``."""
    return _fixed_alnum(raw, 8, ErrorCode.INVALID_PCS_SERIAL)


def parse_email(raw: str) -> str:
    """The address as stored and mailed to: half-width, ASCII only, lower case.

    The mail path sends plain SMTP (no SMTPUTF8), so an address with any non-ASCII
    character (``idn@bücher.example``, a Japanese local part) could never be mailed: it
    is refused here rather than accepted and never sent. Addresses are compared in lower
    case (user IDs are looked up case-insensitively).
    """
    text = to_half_width(raw).strip()
    if not text.isascii() or not text.isprintable():
        raise FieldRuleError(ErrorCode.INVALID_EMAIL)
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise FieldRuleError(ErrorCode.INVALID_EMAIL) from None
    return checked.normalized.lower()


GatewayId = Annotated[str, AfterValidator(parse_gateway_id)]
"""12 half-width alphanumerics (full-width input is converted, nothing else is)."""

PcsSerial = Annotated[str, AfterValidator(parse_pcs_serial)]
"""8 half-width alphanumerics (full-width input is converted, nothing else is)."""

EmailAddress = Annotated[str, AfterValidator(parse_email)]
"""An address the mail path can send to (every route that takes one uses this type)."""
