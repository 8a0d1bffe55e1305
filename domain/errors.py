"""Stable error codes with their Japanese messages.

Every refusal the system gives a customer or a front end carries one of these codes. The
API maps a code to an HTTP status in one place (``api/errors.py``); workflows and
activities raise ``ApplicationError(message, type=code)`` with the same codes, so a refusal
reads the same whichever layer found it. Messages never contain personal data: they are
also what Temporal stores (in plaintext) as failure messages.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # field rules (422)
    INVALID_GATEWAY_ID = "invalid_gateway_id"
    INVALID_PCS_SERIAL = "invalid_pcs_serial"
    INVALID_EMAIL = "invalid_email"
    INVALID_INPUT = "invalid_input"
    TERMS_VERSION_OUTDATED = "terms_version_outdated"
    # authentication (401/403)
    NOT_AUTHENTICATED = "not_authenticated"
    LOGIN_FAILED = "login_failed"
    SYSTEM_KEY_INVALID = "system_key_invalid"
    # not found (404)
    JOURNEY_NOT_FOUND = "journey_not_found"
    APPLICATION_NOT_FOUND = "application_not_found"
    # conflicts with the journey's state (409)
    WRONG_STAGE = "wrong_stage"
    JOURNEY_CLOSED = "journey_closed"
    ACCOUNT_EXISTS = "account_exists"
    GATEWAY_REGISTERED = "gateway_registered"
    GATEWAY_NOT_OWNED = "gateway_not_owned"
    GATEWAY_NOT_ELIGIBLE = "gateway_not_eligible"
    GATEWAY_ALREADY_APPLIED = "gateway_already_applied"
    # the system (503)
    WORKER_UNAVAILABLE = "worker_unavailable"


MESSAGES: dict[str, str] = {
    ErrorCode.INVALID_GATEWAY_ID: (
        "ゲートウェイIDは半角英数字12桁で入力してください"
        "（全角の英数字は半角に変換して受け付けます）。"
    ),
    ErrorCode.INVALID_PCS_SERIAL: (
        "パワーコンディショナ製造番号は半角英数字8桁で入力してください"
        "（全角の英数字は半角に変換して受け付けます）。"
    ),
    ErrorCode.INVALID_EMAIL: (
        "メールアドレスの形式が正しくありません（半角英数字で入力してください）。"
    ),
    ErrorCode.INVALID_INPUT: "入力内容が正しくありません。",
    ErrorCode.TERMS_VERSION_OUTDATED: (
        "会員規約が改定されています。最新の会員規約をご確認のうえ、あらためて同意してください。"
    ),
    ErrorCode.NOT_AUTHENTICATED: "ログインしてください。",
    ErrorCode.LOGIN_FAILED: "ユーザID（メールアドレス）またはパスワードが正しくありません。",
    ErrorCode.SYSTEM_KEY_INVALID: "システム連携キーが正しくありません。",
    ErrorCode.JOURNEY_NOT_FOUND: "お申し込み手続きが見つかりません。",
    ErrorCode.APPLICATION_NOT_FOUND: "このゲートウェイのお申し込みは見つかりません。",
    ErrorCode.WRONG_STAGE: "現在の手続きの段階では、この操作はできません。",
    ErrorCode.JOURNEY_CLOSED: "このお申し込み手続きは終了しています。",
    ErrorCode.ACCOUNT_EXISTS: "このアカウントは登録済みです。",
    ErrorCode.GATEWAY_REGISTERED: "このゲートウェイは既に別のアカウントに登録されています。",
    ErrorCode.GATEWAY_NOT_OWNED: "このゲートウェイはお客様のアカウントに登録されていません。",
    ErrorCode.GATEWAY_NOT_ELIGIBLE: (
        "このゲートウェイは「みんなでつくるエコ活サークル」の対象外です"
        "（対象機種で、PVユニットと蓄電池ユニットの両方をご使用中であることが必要です）。"
    ),
    ErrorCode.GATEWAY_ALREADY_APPLIED: "このゲートウェイは既にお申し込み済みです。",
    ErrorCode.WORKER_UNAVAILABLE: (
        "ただいま処理を受け付けられません。しばらくしてから再度お試しください。"
    ),
}


def message_for(code: str) -> str:
    return MESSAGES.get(code, MESSAGES[ErrorCode.INVALID_INPUT])


class FieldRuleError(ValueError):
    """A field rule refused a value; pydantic turns it into a field-level error.

    The message is the Japanese text and the code is kept on the exception so the API can
    report it; neither contains the rejected value.
    """

    def __init__(self, code: str) -> None:
        super().__init__(message_for(code))
        self.code = code
