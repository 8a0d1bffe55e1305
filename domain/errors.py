"""Stable error codes with their Japanese messages.

Every refusal the system gives a customer or a front end carries one of these codes. The
API maps a code to an HTTP status in one place (``api/errors.py``); workflows and
activities raise ``ApplicationError(message, type=code)`` with the same codes, so a refusal
reads the same whichever layer found it. Messages never contain personal data: they are
also what Temporal stores (in plaintext) as failure messages.
"""

from __future__ import annotations

from enum import StrEnum, auto


class ErrorCode(StrEnum):
    """Each value is the member's name in lower case (``auto()`` of a StrEnum)."""

    # field rules (422)
    INVALID_GATEWAY_ID = auto()
    INVALID_PCS_SERIAL = auto()
    INVALID_EMAIL = auto()
    INVALID_INPUT = auto()
    TERMS_VERSION_OUTDATED = auto()
    INVALID_NAME = auto()
    CORPORATE_NAME = auto()
    INVALID_FURIGANA = auto()
    INVALID_POSTAL_CODE = auto()
    UNKNOWN_POSTAL_CODE = auto()
    INVALID_PREFECTURE = auto()
    PREFECTURE_MISMATCH = auto()
    INVALID_ADDRESS = auto()
    ADDRESS_USE_HYPHENS = auto()
    INVALID_PHONE = auto()
    INVALID_PASSWORD = auto()
    PASSWORD_MISMATCH = auto()
    SERVICE_OTHER_SITE = auto()
    # points signup links and steps
    LINK_UNKNOWN = auto()
    LINK_EXPIRED = auto()
    LINK_REPLACED = auto()
    LINK_USED = auto()
    SIGNUP_COMPLETED = auto()
    SIGNUP_CLOSED = auto()
    SESSION_INVALID = auto()
    DOCUMENTS_NOT_PRESENTED = auto()
    SIGNUP_INCOMPLETE = auto()
    GATEWAY_NOT_APPLIED = auto()
    GATEWAY_ALREADY_MEMBER = auto()
    EMAIL_ALREADY_MEMBER = auto()
    RESEND_TOO_SOON = auto()
    RESEND_LIMIT = auto()
    RATE_LIMITED = auto()
    # authentication (401/403)
    NOT_AUTHENTICATED = auto()
    LOGIN_FAILED = auto()
    SYSTEM_KEY_INVALID = auto()
    CODEC_FORBIDDEN = auto()
    # not found (404)
    JOURNEY_NOT_FOUND = auto()
    APPLICATION_NOT_FOUND = auto()
    # conflicts with the journey's state (409)
    WRONG_STAGE = auto()
    JOURNEY_CLOSED = auto()
    ACCOUNT_EXISTS = auto()
    GATEWAY_REGISTERED = auto()
    GATEWAY_NOT_OWNED = auto()
    GATEWAY_NOT_ELIGIBLE = auto()
    GATEWAY_ALREADY_APPLIED = auto()
    # the system (503)
    WORKER_UNAVAILABLE = auto()
    # ---- "no door left open" (issue 6): added at the end, for the lead to merge ----
    LOGIN_THROTTLED = auto()  # 429
    CODEC_PAYLOAD_INVALID = auto()  # 422


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
    ErrorCode.INVALID_NAME: "氏名を50文字以内で入力してください。",
    ErrorCode.CORPORATE_NAME: "個人の方のみ登録可能です。法人の方は登録できません。",
    ErrorCode.INVALID_FURIGANA: (
        "フリガナは全角カタカナで入力してください"
        "（ひらがな・半角カタカナは全角カタカナに変換して受け付けます）。"
    ),
    ErrorCode.INVALID_POSTAL_CODE: (
        "郵便番号は半角数字7桁（例：000-0000）で入力してください"
        "（全角数字は半角に変換して受け付けます）。"
    ),
    ErrorCode.UNKNOWN_POSTAL_CODE: "この郵便番号は存在しません。ご確認ください。",
    ErrorCode.INVALID_PREFECTURE: "都道府県を選択してください。",
    ErrorCode.PREFECTURE_MISMATCH: "都道府県が郵便番号と一致しません。",
    ErrorCode.INVALID_ADDRESS: (
        "以降の住所を100文字以内で入力してください"
        "（全角の英数字・記号は半角に変換して受け付けます）。"
    ),
    ErrorCode.ADDRESS_USE_HYPHENS: (
        "「丁目」、「番地」は半角ハイフンで入力し、「号」は入力しないでください"
        "（例：1丁目2番地3号 → 1-2-3）。"
    ),
    ErrorCode.INVALID_PHONE: (
        "電話番号を半角数字で、3つの欄に分けて入力してください"
        "（全角数字は半角に変換して受け付けます）。"
    ),
    ErrorCode.INVALID_PASSWORD: (
        "パスワードは半角英数字記号で、英大文字・英小文字・数字・記号をそれぞれ最低1文字ずつ"
        "含めた、10文字以上100文字以下で入力してください（全角文字は使えません）。"
    ),
    ErrorCode.PASSWORD_MISMATCH: "確認用パスワードがパスワードと一致しません。",
    ErrorCode.TERMS_VERSION_OUTDATED: (
        "会員規約が改定されています。最新の会員規約をご確認のうえ、あらためて同意してください。"
    ),
    ErrorCode.SERVICE_OTHER_SITE: (
        "ちくでんエコめがねをご利用中の方は、このサイトではなく株式会社NTTスマイルエナジーの"
        "登録受付サイトからお手続きください（両サービスご利用中の方は一度だけ登録してください）。"
    ),
    ErrorCode.LINK_UNKNOWN: (
        "このURLは無効です。登録受付サイトから、メールアドレスの入力をやり直してください。"
    ),
    ErrorCode.LINK_EXPIRED: (
        "URLの有効期限（24時間）が切れています。"
        "登録受付サイトより再度メールアドレスのご登録を行ってください。"
    ),
    ErrorCode.LINK_REPLACED: (
        "このURLは、新しいURLの発行により無効になりました。最新のメールに記載のURLをご利用ください。"
    ),
    ErrorCode.LINK_USED: (
        "このURLは使用済みです。手続きを続けるには、登録受付サイトから"
        "メールアドレスの入力をやり直してください（入力済みの内容は引き継がれます）。"
    ),
    ErrorCode.SIGNUP_COMPLETED: "会員登録は完了しています。マイページからログインしてください。",
    ErrorCode.SIGNUP_CLOSED: (
        "この会員登録の手続きは終了しました。登録受付サイトから、はじめからお手続きください。"
    ),
    ErrorCode.SESSION_INVALID: (
        "手続きの有効期限が切れたか、新しいURLが発行されています。メールのURLから再度お進みください。"
    ),
    ErrorCode.DOCUMENTS_NOT_PRESENTED: (
        "上記2つの規約を確認してから同意してください（両方の規約を開くとチェックが有効になります）。"
    ),
    ErrorCode.SIGNUP_INCOMPLETE: "未入力の手続きがあります。前の画面から入力してください。",
    ErrorCode.GATEWAY_NOT_APPLIED: (
        "ゲートウェイIDとパワーコンディショナ製造番号の組み合わせが、「みんなでつくるエコ活サークル」の"
        "お申込み内容と一致しません。お申込み完了のお知らせメールをご確認ください。"
    ),
    ErrorCode.GATEWAY_ALREADY_MEMBER: "このゲートウェイは既にスマイルeポイントに登録されています。",
    ErrorCode.EMAIL_ALREADY_MEMBER: "このメールアドレスは既に登録されています。",
    ErrorCode.RESEND_TOO_SOON: "しばらく時間をおいてから再度お試しください。",
    ErrorCode.RESEND_LIMIT: "本日の送信回数の上限に達しました。明日以降に再度お試しください。",
    ErrorCode.RATE_LIMITED: "リクエストが多すぎます。しばらく時間をおいてから再度お試しください。",
    ErrorCode.NOT_AUTHENTICATED: "ログインしてください。",
    ErrorCode.LOGIN_FAILED: "ユーザID（メールアドレス）またはパスワードが正しくありません。",
    ErrorCode.SYSTEM_KEY_INVALID: "システム連携キーが正しくありません。",
    ErrorCode.CODEC_FORBIDDEN: "復号の権限がありません。",
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
    # ---- "no door left open" (issue 6) ----
    # The same words whether or not the user ID exists (no account is revealed).
    ErrorCode.LOGIN_THROTTLED: (
        "ログインの失敗が続いたため、一時的にログインを受け付けていません。"
        "しばらく時間をおいてから再度お試しください。"
    ),
    ErrorCode.CODEC_PAYLOAD_INVALID: "復号・暗号化できないペイロードです。",
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
