"""Stable error codes: one table, code → HTTP status → Japanese message.

Every refusal the system gives a customer or a front end carries one of these codes.
``ERRORS`` holds each code's HTTP status (a plain int: domain/ stays free of web
frameworks) and its message, in one row, and a test checks that every code has its row;
nothing defaults. Workflows and activities raise ``ApplicationError(message, type=code)``
with the same codes, so a refusal reads the same whichever layer found it. Messages never
contain personal data: they are also what Temporal stores (in plaintext) as failure
messages.
"""

from __future__ import annotations

from enum import StrEnum, auto
from typing import NamedTuple


class ErrorCode(StrEnum):
    """Each value is the member's name in lower case (``auto()`` of a StrEnum)."""

    # field rules (422)
    INVALID_GATEWAY_ID = auto()
    INVALID_PCS_SERIAL = auto()
    INVALID_EMAIL = auto()
    INVALID_INPUT = auto()
    CONTROL_CHARACTER = auto()
    UNSUPPORTED_CHARACTER = auto()
    GATEWAY_LISTED_TWICE = auto()
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
    # operators (people with their own credentials, api/deps.py OperatorDep)
    OPERATOR_UNAUTHENTICATED = auto()
    OPERATOR_DISABLED = auto()
    OPERATOR_ROLE_INSUFFICIENT = auto()
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
    # the system (503, 500)
    WORKER_UNAVAILABLE = auto()
    TEMPORAL_UNAVAILABLE = auto()
    JOURNEY_CLOSING = auto()
    SERVICE_UNAVAILABLE = auto()
    INTERNAL_ERROR = auto()
    # the HTTP request itself (400, 404, 405, 413, 415)
    MALFORMED_BODY = auto()
    ROUTE_NOT_FOUND = auto()
    METHOD_NOT_ALLOWED = auto()
    BODY_TOO_LARGE = auto()
    UNSUPPORTED_MEDIA_TYPE = auto()

    # ---- knowing the two IDs is not enough (domain/holder.py) ---------------------------
    SIGNUP_LOCKED = auto()
    GATEWAY_LOCKED = auto()
    HOLDER_CONFIRMATION_PENDING = auto()
    HOLDER_CONFIRMATION_EXPIRED = auto()
    HOLDER_DECLINED = auto()
    HOLDER_ASK_LIMIT = auto()
    CONFIRMATION_UNKNOWN = auto()
    CONFIRMATION_EXPIRED = auto()
    CONFIRMATION_REPLACED = auto()
    CONFIRMATION_USED = auto()
    APPLICATION_NOT_ACTIVE = auto()
    # the member's side (domain/member.py)
    MEMBER_SESSION_INVALID = auto()
    MEMBER_CANCELLED = auto()
    EMAIL_UNCHANGED = auto()
    EMAIL_CHANGE_UNKNOWN = auto()
    EMAIL_CHANGE_EXPIRED = auto()
    EMAIL_CHANGE_REPLACED = auto()
    EMAIL_CHANGE_USED = auto()
    EMAIL_CHANGE_UNAVAILABLE = auto()

    # ---- "no door left open" (issue 6) ----------------------------------------------------
    LOGIN_THROTTLED = auto()
    CODEC_PAYLOAD_INVALID = auto()
    # ---- operators (domain/operators.py) ------------------------------------------------
    ACTION_NOT_APPLICABLE = auto()
    NOT_FLAGGED = auto()
    NOT_DORMANT = auto()
    OPERATOR_ROLE_REQUIRED = auto()

    # ---- the whole life of a membership (issue 7) --------------------------------------
    POINTS_MEMBERSHIP_CANCELLED = auto()
    ACCOUNT_NOT_FOUND = auto()
    GATEWAY_EVENT_CONFLICT = auto()
    GATEWAY_EVENT_INCOMPLETE = auto()


class ErrorSpec(NamedTuple):
    """One row of the table: the HTTP status the API answers with, and the message."""

    status: int
    message: str


ERRORS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.INVALID_GATEWAY_ID: ErrorSpec(
        422,
        "ゲートウェイIDは半角英数字12桁で入力してください"
        "（全角の英数字は半角に変換して受け付けます）。",
    ),
    ErrorCode.INVALID_PCS_SERIAL: ErrorSpec(
        422,
        "パワーコンディショナ製造番号は半角英数字8桁で入力してください"
        "（全角の英数字は半角に変換して受け付けます）。",
    ),
    ErrorCode.INVALID_EMAIL: ErrorSpec(
        422,
        "メールアドレスを半角英数字・記号で正しく入力してください（全角の英数字は半角"
        "に変換して受け付けます。日本語などを含むアドレスにはメールを送信できないため"
        "、ご利用いただけません）。",
    ),
    ErrorCode.INVALID_INPUT: ErrorSpec(422, "入力内容が正しくありません。"),
    ErrorCode.CONTROL_CHARACTER: ErrorSpec(
        422,
        "改行・タブなどの制御文字は入力できません。1行の文字として入力してください。",
    ),
    ErrorCode.UNSUPPORTED_CHARACTER: ErrorSpec(
        422,
        "丸数字（①）・ローマ数字（Ⅻ）・半角記号の組み文字（㈱）など、環境に依存する"
        "文字は使えません。通常の文字で入力してください。",
    ),
    ErrorCode.GATEWAY_LISTED_TWICE: ErrorSpec(
        422,
        "同じゲートウェイが2回以上含まれています。",
    ),
    ErrorCode.INVALID_NAME: ErrorSpec(422, "氏名を50文字以内で入力してください。"),
    ErrorCode.CORPORATE_NAME: ErrorSpec(
        422, "個人の方のみ登録可能です。法人の方は登録できません。"
    ),
    ErrorCode.INVALID_FURIGANA: ErrorSpec(
        422,
        "フリガナは全角カタカナで入力してください"
        "（ひらがな・半角カタカナは全角カタカナに変換して受け付けます）。",
    ),
    ErrorCode.INVALID_POSTAL_CODE: ErrorSpec(
        422,
        "郵便番号は半角数字7桁（例：000-0000）で入力してください"
        "（全角数字は半角に変換して受け付けます）。",
    ),
    ErrorCode.UNKNOWN_POSTAL_CODE: ErrorSpec(422, "この郵便番号は存在しません。ご確認ください。"),
    ErrorCode.INVALID_PREFECTURE: ErrorSpec(422, "都道府県を選択してください。"),
    ErrorCode.PREFECTURE_MISMATCH: ErrorSpec(422, "都道府県が郵便番号と一致しません。"),
    ErrorCode.INVALID_ADDRESS: ErrorSpec(
        422,
        "以降の住所を100文字以内で入力してください"
        "（全角の英数字・記号は半角に変換して受け付けます）。",
    ),
    ErrorCode.ADDRESS_USE_HYPHENS: ErrorSpec(
        422,
        "「丁目」、「番地」は半角ハイフンで入力し、「号」は入力しないでください"
        "（例：1丁目2番地3号 → 1-2-3）。",
    ),
    ErrorCode.INVALID_PHONE: ErrorSpec(
        422,
        "電話番号を半角数字で、3つの欄に分けて入力してください"
        "（全角数字は半角に変換して受け付けます）。",
    ),
    ErrorCode.INVALID_PASSWORD: ErrorSpec(
        422,
        "パスワードは半角英数字記号で、英大文字・英小文字・数字・記号をそれぞれ最低1文字ずつ"
        "含めた、10文字以上100文字以下で入力してください（全角文字は使えません）。",
    ),
    ErrorCode.PASSWORD_MISMATCH: ErrorSpec(422, "確認用パスワードがパスワードと一致しません。"),
    ErrorCode.TERMS_VERSION_OUTDATED: ErrorSpec(
        422,
        "会員規約が改定されています。最新の会員規約をご確認のうえ、あらためて同意してください。",
    ),
    ErrorCode.SERVICE_OTHER_SITE: ErrorSpec(
        422,
        "ちくでんエコめがねをご利用中の方は、このサイトではなく株式会社NTTスマイルエナジーの"
        "登録受付サイトからお手続きください（両サービスご利用中の方は一度だけ登録してください）。",
    ),
    ErrorCode.LINK_UNKNOWN: ErrorSpec(
        404, "このURLは無効です。登録受付サイトから、メールアドレスの入力をやり直してください。"
    ),
    ErrorCode.LINK_EXPIRED: ErrorSpec(
        410,
        "URLの有効期限が切れています。登録受付サイトより再度メールアドレスのご登録"
        "を行ってください。",
    ),
    ErrorCode.LINK_REPLACED: ErrorSpec(
        410,
        "このURLは、新しいURLの発行により無効になりました。最新のメールに記載のURLをご利用ください。",
    ),
    ErrorCode.LINK_USED: ErrorSpec(
        410,
        "このURLは使用済みです。手続きを続けるには、登録受付サイトから"
        "メールアドレスの入力をやり直してください（入力済みの内容は引き継がれます）。",
    ),
    ErrorCode.SIGNUP_COMPLETED: ErrorSpec(
        409, "会員登録は完了しています。マイページからログインしてください。"
    ),
    ErrorCode.SIGNUP_CLOSED: ErrorSpec(
        409, "この会員登録の手続きは終了しました。登録受付サイトから、はじめからお手続きください。"
    ),
    ErrorCode.SESSION_INVALID: ErrorSpec(
        401,
        "手続きの有効期限が切れたか、新しいURLが発行されています。メールのURLから再度お進みください。",
    ),
    ErrorCode.DOCUMENTS_NOT_PRESENTED: ErrorSpec(
        409,
        "上記2つの規約を確認してから同意してください（両方の規約を開くとチェックが有効になります）。",
    ),
    ErrorCode.SIGNUP_INCOMPLETE: ErrorSpec(
        409, "未入力の手続きがあります。前の画面から入力してください。"
    ),
    ErrorCode.GATEWAY_NOT_APPLIED: ErrorSpec(
        409,
        "ゲートウェイIDとパワーコンディショナ製造番号の組み合わせが、「みんなでつくるエコ活サークル」の"
        "お申込み内容と一致しません。お申込み完了のお知らせメールをご確認ください。",
    ),
    ErrorCode.GATEWAY_ALREADY_MEMBER: ErrorSpec(
        409, "このゲートウェイは既にスマイルeポイントに登録されています。"
    ),
    ErrorCode.EMAIL_ALREADY_MEMBER: ErrorSpec(409, "このメールアドレスは既に登録されています。"),
    ErrorCode.RESEND_TOO_SOON: ErrorSpec(429, "しばらく時間をおいてから再度お試しください。"),
    ErrorCode.RESEND_LIMIT: ErrorSpec(
        429, "本日の送信回数の上限に達しました。明日以降に再度お試しください。"
    ),
    ErrorCode.RATE_LIMITED: ErrorSpec(
        429, "リクエストが多すぎます。しばらく時間をおいてから再度お試しください。"
    ),
    ErrorCode.NOT_AUTHENTICATED: ErrorSpec(401, "ログインしてください。"),
    ErrorCode.LOGIN_FAILED: ErrorSpec(
        401, "ユーザID（メールアドレス）またはパスワードが正しくありません。"
    ),
    ErrorCode.SYSTEM_KEY_INVALID: ErrorSpec(403, "システム連携キーが正しくありません。"),
    ErrorCode.CODEC_FORBIDDEN: ErrorSpec(403, "復号の権限がありません。"),
    ErrorCode.OPERATOR_UNAUTHENTICATED: ErrorSpec(
        401, "オペレーターの認証情報がないか、正しくありません。"
    ),
    ErrorCode.OPERATOR_DISABLED: ErrorSpec(403, "このオペレーターアカウントは無効です。"),
    ErrorCode.OPERATOR_ROLE_INSUFFICIENT: ErrorSpec(
        403, "この操作にはオペレーター権限が必要です（閲覧者権限では行えません）。"
    ),
    ErrorCode.JOURNEY_NOT_FOUND: ErrorSpec(404, "お申し込み手続きが見つかりません。"),
    ErrorCode.APPLICATION_NOT_FOUND: ErrorSpec(
        404, "このゲートウェイのお申し込みは見つかりません。"
    ),
    ErrorCode.WRONG_STAGE: ErrorSpec(409, "現在の手続きの段階では、この操作はできません。"),
    ErrorCode.JOURNEY_CLOSED: ErrorSpec(409, "このお申し込み手続きは終了しています。"),
    ErrorCode.ACCOUNT_EXISTS: ErrorSpec(409, "このアカウントは登録済みです。"),
    ErrorCode.GATEWAY_REGISTERED: ErrorSpec(
        409, "このゲートウェイは既に別のアカウントに登録されています。"
    ),
    ErrorCode.GATEWAY_NOT_OWNED: ErrorSpec(
        409, "このゲートウェイはお客様のアカウントに登録されていません。"
    ),
    ErrorCode.GATEWAY_NOT_ELIGIBLE: ErrorSpec(
        409,
        "このゲートウェイは「みんなでつくるエコ活サークル」の対象外です"
        "（対象機種で、PVユニットと蓄電池ユニットの両方をご使用中であることが必要です）。",
    ),
    ErrorCode.GATEWAY_ALREADY_APPLIED: ErrorSpec(409, "このゲートウェイは既にお申し込み済みです。"),
    ErrorCode.WORKER_UNAVAILABLE: ErrorSpec(
        503, "ただいま処理を受け付けられません。しばらくしてから再度お試しください。"
    ),
    ErrorCode.TEMPORAL_UNAVAILABLE: ErrorSpec(
        503,
        "ただいま処理を受け付けられません。しばらくしてから再度お試しください。",
    ),
    ErrorCode.JOURNEY_CLOSING: ErrorSpec(
        503,
        "前回のお手続きの終了処理中です。しばらくしてから再度お試しください。",
    ),
    ErrorCode.SERVICE_UNAVAILABLE: ErrorSpec(
        503,
        "ただいまシステムが混み合っているか停止しています。しばらくしてから再度お試しください。",
    ),
    ErrorCode.INTERNAL_ERROR: ErrorSpec(
        500, "システムエラーが発生しました。しばらくしてから再度お試しください。"
    ),
    ErrorCode.MALFORMED_BODY: ErrorSpec(
        400, "リクエストの本文を読み取れません（JSON形式で送信してください）。"
    ),
    ErrorCode.ROUTE_NOT_FOUND: ErrorSpec(404, "お探しのページは見つかりません。"),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorSpec(405, "この操作はできません。"),
    ErrorCode.BODY_TOO_LARGE: ErrorSpec(413, "送信された内容が大きすぎます。"),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: ErrorSpec(
        415, "送信形式が正しくありません（application/json で送信してください）。"
    ),
    # ---- knowing the two IDs is not enough (domain/holder.py) ---------------------------
    ErrorCode.SIGNUP_LOCKED: ErrorSpec(
        409,
        "ゲートウェイIDとパワーコンディショナ製造番号の入力誤りが上限に達したため、この会員登録の"
        "手続きはロックされました。この手続きは、しばらくご利用がないと終了し、その後あらためて"
        "はじめからお手続きいただけます。ゲートウェイIDとパワーコンディショナ製造番号は、"
        "「みんなでつくるエコ活サークル」のお申込み完了のお知らせメールでご確認ください。",
    ),
    ErrorCode.GATEWAY_LOCKED: ErrorSpec(
        429,
        "このゲートウェイIDについて入力誤りが続いたため、安全のため一時的に受付を停止しています。"
        "24時間ほど時間をおいてから再度お試しください。",
    ),
    ErrorCode.HOLDER_CONFIRMATION_PENDING: ErrorSpec(
        409,
        "このゲートウェイの「みんなでつくるエコ活サークル」にご登録のアカウントの方に、確認のメールを"
        "お送りしています。アカウントの方が承認すると登録できます。承認後に、あらためて「登録する」を"
        "押してください。",
    ),
    ErrorCode.HOLDER_CONFIRMATION_EXPIRED: ErrorSpec(
        409,
        "ゲートウェイにご登録のアカウントの方による確認が、有効期限内に行われませんでした。"
        "確認画面から、あらためて確認をご依頼ください。",
    ),
    ErrorCode.HOLDER_DECLINED: ErrorSpec(
        409,
        "この会員登録は、ゲートウェイにご登録のアカウントの方に承認されなかったため、"
        "手続きを終了しました。",
    ),
    ErrorCode.HOLDER_ASK_LIMIT: ErrorSpec(
        429, "確認のご依頼の回数が上限に達しました。時間をおいてから再度お試しください。"
    ),
    ErrorCode.CONFIRMATION_UNKNOWN: ErrorSpec(
        404, "このURLは無効です。メールに記載のURLをご確認ください。"
    ),
    ErrorCode.CONFIRMATION_EXPIRED: ErrorSpec(
        410,
        "このURLは、有効期限が切れたか、会員登録の手続きが終了したため無効です。"
        "お心当たりのない場合は、このままで問題ありません。",
    ),
    ErrorCode.CONFIRMATION_REPLACED: ErrorSpec(
        410,
        "このURLは、新しい確認のご依頼により無効になりました。最新のメールのURLをご利用ください。",
    ),
    ErrorCode.CONFIRMATION_USED: ErrorSpec(410, "この確認には、すでにご回答いただいています。"),
    ErrorCode.APPLICATION_NOT_ACTIVE: ErrorSpec(
        409,
        "このゲートウェイの「みんなでつくるエコ活サークル」のお申込みは解約されているため、"
        "スマイルeポイントに登録できません。",
    ),
    # ---- "no door left open" (issue 6) ----------------------------------------------------
    # The same words whether or not the user ID exists (no account is revealed).
    ErrorCode.LOGIN_THROTTLED: ErrorSpec(
        429,
        "ログインの失敗が続いたため、一時的にログインを受け付けていません。"
        "しばらく時間をおいてから再度お試しください。",
    ),
    ErrorCode.CODEC_PAYLOAD_INVALID: ErrorSpec(422, "復号・暗号化できないペイロードです。"),
    ErrorCode.ACTION_NOT_APPLICABLE: ErrorSpec(
        409, "この手続きの現在の状態では、この操作は行えません。"
    ),
    ErrorCode.NOT_FLAGGED: ErrorSpec(409, "この手続きには対応待ちの印が付いていません。"),
    ErrorCode.NOT_DORMANT: ErrorSpec(409, "この手続きは休止中ではありません。"),
    ErrorCode.OPERATOR_ROLE_REQUIRED: ErrorSpec(403, "この操作にはオペレーター権限が必要です。"),
    ErrorCode.MEMBER_SESSION_INVALID: ErrorSpec(
        401, "ログインの有効期限が切れました。マイページから再度ログインしてください。"
    ),
    ErrorCode.MEMBER_CANCELLED: ErrorSpec(
        409, "スマイルeポイントは退会済みです。退会後の再登録はできません。"
    ),
    ErrorCode.EMAIL_UNCHANGED: ErrorSpec(
        422, "現在ご登録のメールアドレスと同じです。新しいメールアドレスを入力してください。"
    ),
    ErrorCode.EMAIL_CHANGE_UNKNOWN: ErrorSpec(
        404, "このURLは無効です。マイページから、メールアドレスの変更をやり直してください。"
    ),
    ErrorCode.EMAIL_CHANGE_EXPIRED: ErrorSpec(
        410,
        "URLの有効期限が切れています。マイページから、メールアドレスの変更をやり直してください。",
    ),
    ErrorCode.EMAIL_CHANGE_REPLACED: ErrorSpec(
        410,
        "このURLは、新しい変更のお申込みにより無効になりました。最新のメールのURLをご利用ください。",
    ),
    ErrorCode.EMAIL_CHANGE_USED: ErrorSpec(
        410, "このURLは使用済みです。メールアドレスの変更は完了しています。"
    ),
    ErrorCode.EMAIL_CHANGE_UNAVAILABLE: ErrorSpec(
        409,
        "このメールアドレスには変更できません。別のメールアドレスで、マイページから"
        "変更をやり直してください。",
    ),
    ErrorCode.POINTS_MEMBERSHIP_CANCELLED: ErrorSpec(
        409,
        "このゲートウェイのスマイルeポイント会員登録は退会済みのため、再度ご登録いただけません。"
        "そのため「みんなでつくるエコ活サークル」へのお申し込みもお受けできません。",
    ),
    ErrorCode.ACCOUNT_NOT_FOUND: ErrorSpec(404, "このアカウントは登録されていません。"),
    ErrorCode.GATEWAY_EVENT_CONFLICT: ErrorSpec(409, "このイベントIDは別の内容で記録済みです。"),
    ErrorCode.GATEWAY_EVENT_INCOMPLETE: ErrorSpec(
        422, "このイベントの種類に必要な項目が不足しています。"
    ),
}


def error_spec(code: str) -> ErrorSpec:
    """The row of ``code``; an unknown code is a programming error (``ValueError``)."""
    return ERRORS[ErrorCode(code)]


def message_for(code: str) -> str:
    return error_spec(code).message


def status_for(code: str) -> int:
    return error_spec(code).status


class FieldRuleError(ValueError):
    """A field rule refused a value; pydantic turns it into a field-level error.

    The message is the Japanese text and the code is kept on the exception so the API can
    report it; neither contains the rejected value.
    """

    def __init__(self, code: str) -> None:
        super().__init__(message_for(code))
        self.code = code
