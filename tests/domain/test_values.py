"""Gateway ID and PCS serial rules: NFKC first, then an explicit [0-9A-Z] check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from domain.errors import FieldRuleError, message_for
from domain.values import GatewayId, PcsSerial, parse_gateway_id, parse_pcs_serial

HALF = st.text(
    alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=12,
    max_size=12,
)


def to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@given(HALF)
def test_fullwidth_input_is_normalised(raw: str) -> None:
    assert parse_gateway_id(to_fullwidth(raw)) == raw.upper()


@given(HALF, st.sampled_from([" ", "\u3000", "\t"]))
def test_surrounding_spaces_of_both_widths_are_dropped(raw: str, space: str) -> None:
    assert parse_gateway_id(space + raw + space) == raw.upper()


@given(st.text(min_size=0, max_size=30))
def test_anything_accepted_is_twelve_ascii_alphanumerics(raw: str) -> None:
    try:
        value = parse_gateway_id(raw)
    except FieldRuleError as err:
        # One fixed message whatever was typed: the input is never echoed back.
        assert err.code == "invalid_gateway_id"
        assert str(err) == message_for("invalid_gateway_id")
        return
    assert len(value) == 12 and value.isascii() and value.isalnum() and value == value.upper()


@pytest.mark.parametrize(
    "raw",
    [
        "١٢٣٤٥٦٧٨٩٠١٢",  # Arabic-Indic digits: \d would take them; NFKC keeps them
        "GW-000000001",  # hyphen
        "GW00000000ー1",  # long vowel mark
        "ｶﾞｰﾄｳｪｲ12345",  # half-width katakana
        "GW00000001",  # too short
        "GW00000000012",  # too long
        "",
    ],
)
def test_refused_gateway_ids(raw: str) -> None:
    with pytest.raises(FieldRuleError) as err:
        parse_gateway_id(raw)
    assert "半角英数字12桁" in str(err.value)


def test_pcs_serial() -> None:
    assert parse_pcs_serial("ｐｃｓ０００１２") == "PCS00012"
    with pytest.raises(FieldRuleError) as err:
        parse_pcs_serial("PCS0001")
    assert err.value.code == "invalid_pcs_serial"


class Form(BaseModel):
    gateway_id: GatewayId
    pcs_serial: PcsSerial


def test_annotated_types_give_field_errors_with_codes() -> None:
    with pytest.raises(ValidationError) as info:
        Form(gateway_id="short", pcs_serial="ＰＣＳ０００１２")
    [error] = info.value.errors()
    assert error["loc"] == ("gateway_id",)
    assert error["ctx"]["error"].code == "invalid_gateway_id"
    assert (
        Form(gateway_id="ＧＷ００００００００１２", pcs_serial="pcs00012").pcs_serial == "PCS00012"
    )


# ---- width only: nothing but full-width ASCII is converted (issue 6) ----------------

# Characters NFKC would have turned into ASCII letters or digits: circled and
# parenthesised numbers, Roman numerals, half-width katakana, ligatures, superscripts,
# and letters whose upper case is ASCII (ſ → S, ı → I).
COMPATIBILITY = st.sampled_from("①②⑫⑳⑴⒈ⅠⅡⅫⅻｱｶﾞﾝﬁﬀ²³₁ſı")
OTHER_DIGITS = st.characters(categories=["Nd"]).filter(
    lambda c: not "0" <= c <= "9" and not "０" <= c <= "９"
)


@given(st.text(alphabet="0123456789ABCDEF", min_size=11, max_size=11), COMPATIBILITY)
def test_compatibility_characters_are_refused_not_converted(head: str, odd: str) -> None:
    for raw in (head + odd, odd + head):
        with pytest.raises(FieldRuleError) as err:
            parse_gateway_id(raw)
        assert err.value.code == "invalid_gateway_id"


def test_circled_one_and_roman_twelve() -> None:
    for raw in ("ABCDEF12345①", "ABCDEFGHIJⅫ", "ＡＢＣＤＥＦ１２３４５①"):
        with pytest.raises(FieldRuleError):
            parse_gateway_id(raw)
    with pytest.raises(FieldRuleError):
        parse_pcs_serial("PCS0001①")


@given(st.text(alphabet="0123456789ABCDEF", min_size=7, max_size=7), OTHER_DIGITS)
def test_digits_of_other_scripts_are_refused(head: str, digit: str) -> None:
    with pytest.raises(FieldRuleError):
        parse_pcs_serial(head + digit)


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_full_width_digits_are_converted(digits: str) -> None:
    assert parse_pcs_serial(to_fullwidth(digits)) == digits
