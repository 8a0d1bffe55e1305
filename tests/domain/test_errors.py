"""The error table: every code has its status and message, and nothing defaults."""

from __future__ import annotations

import re

import pytest

from domain.errors import ERRORS, ErrorCode, message_for, status_for

STATUSES = {400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503}


def test_every_code_has_a_status_and_a_japanese_message() -> None:
    assert set(ERRORS) == set(ErrorCode)
    for code in ErrorCode:
        status, message = ERRORS[code]
        assert status in STATUSES, code
        assert message.strip() and message.endswith("。"), code
        # Japanese text, and never a placeholder that a value would be put into.
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", message), code
        assert "{" not in message, code


def test_an_unknown_code_is_an_error_not_a_default() -> None:
    with pytest.raises(ValueError):
        status_for("no_such_code")
    with pytest.raises(ValueError):
        message_for("no_such_code")


def test_codes_are_their_names_in_lower_case() -> None:
    for code in ErrorCode:
        assert code.value == code.name.lower()
