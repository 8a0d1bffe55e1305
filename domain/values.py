"""Value types for identifiers customers type in.

Customers type on Japanese keyboards, so ``ＧＷ１２３…`` (full-width) is common. Gateway IDs
and PCS serials are normalised with NFKC (full-width letters and digits become half-width),
surrounding spaces are dropped and letters are upper-cased; what is left must be exactly
the guide's half-width alphanumerics. The check runs on the normalised text with an explicit
``[0-9A-Z]`` class: ``\\d`` would also accept full-width and Arabic-Indic digits.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

from domain.errors import FieldRuleError

_ALNUM = re.compile(r"[0-9A-Z]+")


def normalise_id(raw: str) -> str:
    """NFKC, strip spaces of both widths, upper-case."""
    return unicodedata.normalize("NFKC", raw).strip().upper()


def _fixed_alnum(raw: str, length: int, code: str) -> str:
    text = normalise_id(raw)
    if len(text) != length or not _ALNUM.fullmatch(text):
        raise FieldRuleError(code)
    return text


def parse_gateway_id(raw: str) -> str:
    """Return the canonical gateway ID or raise ``FieldRuleError('invalid_gateway_id')``."""
    return _fixed_alnum(raw, 12, "invalid_gateway_id")


def parse_pcs_serial(raw: str) -> str:
    """Return the canonical PCS serial or raise ``FieldRuleError('invalid_pcs_serial')``."""
    return _fixed_alnum(raw, 8, "invalid_pcs_serial")


GatewayId = Annotated[str, AfterValidator(parse_gateway_id)]
"""12 half-width alphanumerics after NFKC (full-width input is accepted and converted)."""

PcsSerial = Annotated[str, AfterValidator(parse_pcs_serial)]
"""8 half-width alphanumerics after NFKC (full-width input is accepted and converted)."""
