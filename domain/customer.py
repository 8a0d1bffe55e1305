"""Field rules of the スマイルeポイント signup (the guide's STEP 3 and STEP 4), all pure.

Per field, full-width input is either converted or refused, and the message says which:
- name: kept as typed (spaces folded); names with a corporate designator are refused;
- furigana: hiragana and half-width katakana are converted to full-width katakana, spaces
  of both widths become one full-width space, hyphen look-alikes become the long vowel ー;
- postal code, phone, rest of address: full-width digits, letters and symbols become
  half-width (width only, ``domain.text``), hyphen look-alikes between digits become "-";
  ①, Ⅻ, ㈱ and other compatibility characters are refused, never converted;
- password: never altered; anything but half-width printable ASCII is refused.
Every text field refuses control characters. Every check on digits runs on the converted
text against [0-9], never \\d.

Whether a postal code exists (and lies in the prefecture) is a look-up in Japan Post's
data, I/O: the API's request model does it (``api/customer.py``), so that these models
can be decoded inside a workflow, where they validate again without any I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

# Imported at module level, not lazily: workflows import this module passed through the
# sandbox, and an import made while a workflow runs would load the library again for it.
import jaconv
import phonenumbers
from pydantic import AfterValidator, BaseModel, Field

from domain.errors import ErrorCode, FieldRuleError
from domain.text import HYPHEN_LOOKALIKES, is_compatibility, is_other_digit, plain, to_half_width

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県",
    "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府",
    "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県",
    "鹿児島県", "沖縄県",
)  # fmt: skip

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

# phonenumbers loads each region's metadata lazily, by an import at the first parse. Inside
# the workflow sandbox (a payload carrying CustomerInfo is validated when it decodes) that
# import would re-import phonenumbers in the sandbox and fail, so the decode and the replay
# would depend on whether some earlier code in the process had parsed a Japanese number.
# Load Japan's metadata now, outside any sandbox.
phonenumbers.PhoneMetadata.metadata_for_region("JP")


def _refuse(code: ErrorCode) -> FieldRuleError:
    return FieldRuleError(code.value)


def normalise_name(raw: str) -> str:
    text = _SPACES.sub(" ", plain(raw)).strip()
    if not text or len(text) > 50:
        raise _refuse(ErrorCode.INVALID_NAME)
    if _CORPORATE.search(text) or _CORPORATE.search(unicodedata.normalize("NFKC", text)):
        raise _refuse(ErrorCode.CORPORATE_NAME)
    return text


def normalise_furigana(raw: str) -> str:
    text = jaconv.h2z(plain(raw), kana=True, ascii=False, digit=False)
    text = jaconv.hira2kata(text)
    text = text.translate({ord(c): "ー" for c in HYPHEN_LOOKALIKES})
    text = _SPACES.sub("\u3000", text).strip("\u3000 ")
    if not text or len(text) > 50 or not _KATAKANA.fullmatch(text) or text.startswith("ー"):
        raise _refuse(ErrorCode.INVALID_FURIGANA)
    return text


def _half_width_digits(raw: str) -> str:
    text = to_half_width(plain(raw)).strip()
    return text.translate({ord(c): "-" for c in HYPHEN_LOOKALIKES})


def normalise_postal_code(raw: str) -> str:
    """``NNN-NNNN`` (syntax only; whether it exists is ``postal_code_prefecture``)."""
    match = _POSTAL.fullmatch(_half_width_digits(raw))
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
    # Width both ways: full-width ASCII to half-width, half-width katakana to full-width.
    text = jaconv.h2z(to_half_width(plain(raw)), kana=True, ascii=False, digit=False)
    text = _BETWEEN_DIGITS.sub("-", text)
    text = _SPACES.sub(" ", text).strip()
    if not text or len(text) > 100:
        raise _refuse(ErrorCode.INVALID_ADDRESS)
    if any(is_compatibility(c) or is_other_digit(c) for c in text):
        raise _refuse(ErrorCode.UNSUPPORTED_CHARACTER)
    if _BANCHI_WORDS.search(text):
        raise _refuse(ErrorCode.ADDRESS_USE_HYPHENS)
    return text


def normalise_phone(parts: list[str]) -> list[str]:
    """Three half-width digit parts that make a valid Japanese number (phonenumbers)."""
    if len(parts) != 3:
        raise _refuse(ErrorCode.INVALID_PHONE)
    digits = [to_half_width(plain(p)).strip() for p in parts]
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


Name = Annotated[str, AfterValidator(normalise_name)]
Furigana = Annotated[str, AfterValidator(normalise_furigana)]
PostalCode = Annotated[str, AfterValidator(normalise_postal_code)]
Prefecture = Annotated[str, AfterValidator(normalise_prefecture)]
AddressLine = Annotated[str, AfterValidator(normalise_address)]
Phone = Annotated[list[str], AfterValidator(normalise_phone)]


class Address(BaseModel):
    """郵便番号・都道府県・以降の住所 (whether the postal code is real: ``api/customer.py``)."""

    postal_code: PostalCode
    prefecture: Prefecture
    address: AddressLine


class CustomerInfo(BaseModel):
    """STEP 4 without the password: what travels, encrypted, in a workflow and what the
    confirmation screen shows (no installation address: the same as the address)."""

    name: Name
    furigana: Furigana
    address: Address
    installation_address: Address | None = None
    phone: Phone = Field(description='Three parts, e.g. ["03", "1234", "5678"]')
