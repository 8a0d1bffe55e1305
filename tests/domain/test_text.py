"""Control characters are refused in every text field; only width is converted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from domain.customer import (
    normalise_address,
    normalise_furigana,
    normalise_name,
    normalise_phone,
    normalise_postal_code,
)
from domain.errors import FieldRuleError
from domain.text import PlainText, has_control, to_half_width

CONTROLS = ["\r", "\n", "\t", "\x00", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u200b"]
CONTROL = st.sampled_from(CONTROLS)


class Form(BaseModel):
    display_name: PlainText


@pytest.mark.parametrize("control", CONTROLS)
def test_plain_text_refuses_controls(control: str) -> None:
    with pytest.raises(ValidationError) as info:
        Form(display_name=f"悪意{control}Bcc: victim@example.net")
    [error] = info.value.errors()
    assert error["loc"] == ("display_name",)
    assert error["ctx"]["error"].code == "control_character"
    assert "victim" not in str(info.value.errors()[0]["msg"])


@given(st.text(alphabet="笑顔太郎ｱア1１ ", min_size=1, max_size=10), CONTROL)
def test_every_customer_text_rule_refuses_controls(text: str, control: str) -> None:
    raw = text[:1] + control + text[1:]
    for rule in (normalise_name, normalise_furigana, normalise_address, normalise_postal_code):
        with pytest.raises(FieldRuleError) as err:
            rule(raw)
        assert err.value.code == "control_character"
    with pytest.raises(FieldRuleError) as err:
        normalise_phone(["03", "12" + control + "34", "5678"])
    assert err.value.code == "control_character"


def test_width_only() -> None:
    assert to_half_width("ＡＢ１２＠－\u3000") == "AB12@- "
    assert to_half_width("①Ⅻ㈱ｱ١") == "①Ⅻ㈱ｱ١"
    assert not has_control("笑顔 太郎") and has_control("a\u202eb")


@given(st.sampled_from("①⑫Ⅻ㈱ﬁ²"))
def test_postal_code_and_phone_refuse_compatibility_characters(odd: str) -> None:
    with pytest.raises(FieldRuleError) as err:
        normalise_postal_code("530-000" + odd)
    assert err.value.code == "invalid_postal_code"
    with pytest.raises(FieldRuleError) as err:
        normalise_phone(["06", "1234", "567" + odd])
    assert err.value.code == "invalid_phone"


@given(st.sampled_from("①⑫Ⅻ㈱ﬁ²١٢۳"))
def test_address_refuses_compatibility_characters_and_other_digits(odd: str) -> None:
    with pytest.raises(FieldRuleError) as err:
        normalise_address(f"大阪市北区梅田1-2-{odd}")
    assert err.value.code == "unsupported_character"


def test_address_converts_width_both_ways() -> None:
    assert normalise_address("梅田１－２　ﾋﾞﾙ") == "梅田1-2 ビル"


def test_arabic_indic_postal_code_and_phone() -> None:
    with pytest.raises(FieldRuleError):
        normalise_postal_code("٥٣٠-٠٠٠١")
    with pytest.raises(FieldRuleError):
        normalise_phone(["٠٦", "1234", "5678"])
