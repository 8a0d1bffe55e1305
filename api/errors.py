"""The API's error conventions, in one place.

Every error body is ``{"detail": [{"loc": [...], "code": "...", "message": "..."}]}``:
``code`` is stable, ``message`` is Japanese, and no rejected input is ever echoed (a
password or token must not come back in an error, and FastAPI's default 422 does echo).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from domain.errors import ErrorCode, FieldRuleError, message_for

STATUS: dict[str, int] = {
    ErrorCode.INVALID_GATEWAY_ID: 422,
    ErrorCode.INVALID_PCS_SERIAL: 422,
    ErrorCode.INVALID_EMAIL: 422,
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.TERMS_VERSION_OUTDATED: 422,
    ErrorCode.NOT_AUTHENTICATED: 401,
    ErrorCode.LOGIN_FAILED: 401,
    ErrorCode.SYSTEM_KEY_INVALID: 403,
    ErrorCode.CODEC_FORBIDDEN: 403,
    ErrorCode.JOURNEY_NOT_FOUND: 404,
    ErrorCode.APPLICATION_NOT_FOUND: 404,
    ErrorCode.WRONG_STAGE: 409,
    ErrorCode.JOURNEY_CLOSED: 409,
    ErrorCode.ACCOUNT_EXISTS: 409,
    ErrorCode.GATEWAY_REGISTERED: 409,
    ErrorCode.GATEWAY_NOT_OWNED: 409,
    ErrorCode.GATEWAY_NOT_ELIGIBLE: 409,
    ErrorCode.GATEWAY_ALREADY_APPLIED: 409,
    ErrorCode.WORKER_UNAVAILABLE: 503,
    ErrorCode.INVALID_NAME: 422,
    ErrorCode.CORPORATE_NAME: 422,
    ErrorCode.INVALID_FURIGANA: 422,
    ErrorCode.INVALID_POSTAL_CODE: 422,
    ErrorCode.UNKNOWN_POSTAL_CODE: 422,
    ErrorCode.INVALID_PREFECTURE: 422,
    ErrorCode.PREFECTURE_MISMATCH: 422,
    ErrorCode.INVALID_ADDRESS: 422,
    ErrorCode.ADDRESS_USE_HYPHENS: 422,
    ErrorCode.INVALID_PHONE: 422,
    ErrorCode.INVALID_PASSWORD: 422,
    ErrorCode.PASSWORD_MISMATCH: 422,
    ErrorCode.SERVICE_OTHER_SITE: 422,
    ErrorCode.LINK_UNKNOWN: 404,
    ErrorCode.LINK_EXPIRED: 410,
    ErrorCode.LINK_REPLACED: 410,
    ErrorCode.LINK_USED: 410,
    ErrorCode.SIGNUP_COMPLETED: 409,
    ErrorCode.SIGNUP_CLOSED: 409,
    ErrorCode.SESSION_INVALID: 401,
    ErrorCode.DOCUMENTS_NOT_PRESENTED: 409,
    ErrorCode.SIGNUP_INCOMPLETE: 409,
    ErrorCode.GATEWAY_NOT_APPLIED: 409,
    ErrorCode.GATEWAY_ALREADY_MEMBER: 409,
    ErrorCode.EMAIL_ALREADY_MEMBER: 409,
    ErrorCode.RESEND_TOO_SOON: 429,
    ErrorCode.RESEND_LIMIT: 429,
    ErrorCode.RATE_LIMITED: 429,
    # ---- "no door left open" (issue 6) ----
    ErrorCode.LOGIN_THROTTLED: 429,
    ErrorCode.CODEC_PAYLOAD_INVALID: 422,
}

# Messages for pydantic's own error types (the rejected value is never included).
PYDANTIC_MESSAGES = {
    "missing": "必須項目です。入力してください。",
    "string_too_short": "入力してください。",
    "string_too_long": "入力された文字数が多すぎます。",
}


class ErrorItem(BaseModel):
    loc: list[str | int] = []
    code: str
    message: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


class ApiError(Exception):
    def __init__(
        self,
        code: ErrorCode | str,
        loc: list[str | int] | None = None,
        retry_after: int | None = None,  # seconds, sent as Retry-After (429)
    ) -> None:
        super().__init__(str(code))
        self.code = str(code)
        self.loc = loc or []
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 409)


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: each status with the codes it can carry."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS[code], []).append(code.value)
    by_status.setdefault(422, []).append(ErrorCode.INVALID_INPUT.value)
    return {
        status: {"model": ErrorBody, "description": "codes: " + ", ".join(sorted(set(names)))}
        for status, names in sorted(by_status.items())
    }


def _body(items: list[ErrorItem]) -> dict[str, Any]:
    return ErrorBody(detail=items).model_dump()


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ApiError):  # registered for ApiError only
        raise exc
    item = ErrorItem(loc=exc.loc, code=exc.code, message=message_for(exc.code))
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(_body([item]), status_code=exc.status, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    items = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldRuleError):
            code, message = cause.code, str(cause)
        else:
            code = ErrorCode.INVALID_INPUT.value
            message = PYDANTIC_MESSAGES.get(err["type"], message_for(code))
        loc = [part for part in err["loc"] if isinstance(part, str | int)]
        items.append(ErrorItem(loc=loc, code=code, message=message))
    return JSONResponse(_body(items), status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
