"""What a customer may type in any text field, and the one conversion we make.

Japanese keyboards produce full-width letters, digits and symbols (``ＧＷ１２``) and the
ideographic space; these are converted to half-width (width only, with jaconv). Nothing
else is converted: NFKC would also turn ① into 1, Ⅻ into XII and ㈱ into (株), so
``ABCDEF12345①`` would pass as a gateway ID. Fields that hold codes check the converted
text against explicit ``[0-9A-Z]`` sets (``\\d`` would take Arabic-Indic digits); free text
refuses every compatibility character that is left (those whose NFKD differs from NFD).

Control and format characters (CR, LF, TAB, NUL, U+2028, bidi overrides, …) are refused in
every text field: in a display name they end up in a mail header (``悪意\\r\\nBcc: …``), and
a bidi override hides what a text says from the operator who reads it.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

import jaconv
from pydantic import AfterValidator

from domain.errors import ErrorCode, FieldRuleError

# Characters customers type for a hyphen or a long vowel on Japanese keyboards (the guide
# asks for half-width hyphens in postal codes, phone numbers and addresses).
HYPHEN_LOOKALIKES = "ー－‐―−‑–—ｰ"

# Cc: C0/C1 controls (CR, LF, TAB, NUL, DEL); Cf: format (bidi overrides, zero-width);
# Zl/Zp: U+2028/U+2029; Cs: lone surrogates; Co/Cn: private use and unassigned.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def has_control(text: str) -> bool:
    """True if ``text`` holds a control, format, separator or unassigned character."""
    return any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in text)


def plain(raw: str) -> str:
    """``raw`` unchanged, or ``FieldRuleError('control_character')``."""
    if has_control(raw):
        raise FieldRuleError(ErrorCode.CONTROL_CHARACTER)
    return raw


def to_half_width(raw: str) -> str:
    """Full-width ASCII (letters, digits, symbols, the ideographic space) → half-width.

    Width only: ①, Ⅻ, ㈱, half-width katakana and every other character stay as typed, for
    the field's own check to refuse.
    """
    return str(jaconv.z2h(raw, kana=False, ascii=True, digit=True))


def is_compatibility(char: str) -> bool:
    """A character that NFKC would replace by another (①, Ⅻ, ㈱, ｱ, ﬁ, …).

    Canonical equivalents (CJK compatibility ideographs such as 﨑) are not compatibility
    characters: they are how some names are really written.
    """
    return unicodedata.normalize("NFKD", char) != unicodedata.normalize("NFD", char)


def is_other_digit(char: str) -> bool:
    """A decimal digit that is not 0-9 (Arabic-Indic, Devanagari, …)."""
    return unicodedata.category(char) == "Nd" and not "0" <= char <= "9"


PlainText = Annotated[str, AfterValidator(plain)]
"""Any text field: refused when it holds a control or format character."""
