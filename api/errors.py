"""The API's error conventions, in one place.

Every error body is ``{"detail": [{"loc": [...], "code": "...", "message": "..."}]}``:
``code`` is stable, ``message`` is Japanese, and no rejected input is ever echoed (a
password or token must not come back in an error, and FastAPI's default 422 does echo).
The status of each code is the one in ``domain.errors.ERRORS``; nothing here defaults.

That shape holds for every error a client can get, not only our own refusals: Starlette's
404/405, a malformed body (400), a body over the limit (413), a body that is not JSON
(415), and an outage of a part the API depends on (503: the Temporal server or worker,
the store). Anything else unexpected is a 500 in the same shape, never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import ErrorCode, FieldRuleError, message_for, status_for

log = logging.getLogger(__name__)

# Messages for pydantic's own error types (the rejected value is never included).
PYDANTIC_MESSAGES = {
    "missing": "必須項目です。入力してください。",
    "string_too_short": "入力してください。",
    "string_too_long": "入力された文字数が多すぎます。",
    "bool_type": "true または false で指定してください。",
}

# Starlette's own HTTP errors, each with its code (their default bodies are plain text or
# {"detail": "..."}, outside our documented shape).
HTTP_CODES = {
    400: ErrorCode.MALFORMED_BODY,
    404: ErrorCode.ROUTE_NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}

# Temporal answers that mean "the server is not there (or not now)": an outage, not a bug.
OUTAGE_STATUSES = (
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
)
# A client told 503 may come back after this many seconds.
RETRY_AFTER_SECONDS = "5"


class ErrorItem(BaseModel):
    loc: list[str | int] = []
    code: str
    message: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


class ApiError(Exception):
    """A refusal with a code from the table; its status is the table's."""

    def __init__(
        self,
        code: ErrorCode | str,
        loc: list[str | int] | None = None,
        retry_after: int | None = None,  # seconds, sent as Retry-After (429)
    ) -> None:
        super().__init__(str(code))
        self.code = ErrorCode(code)  # an unknown code fails here, not with a default status
        self.loc = loc or []
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return status_for(self.code)


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: each status with the codes it can carry.

    Every route that uses it can also answer ``invalid_input`` (422), ``service_unavailable``
    (503: the Temporal server or the store is down) and ``internal_error`` (500); the
    request-level errors (400, 413, 415) are added to every route with a body by
    ``install``.
    """
    by_status: dict[int, list[str]] = {}
    for code in (
        *codes,
        ErrorCode.INVALID_INPUT,
        ErrorCode.SERVICE_UNAVAILABLE,
        ErrorCode.INTERNAL_ERROR,
    ):
        by_status.setdefault(status_for(code), []).append(code.value)
    return {
        status: {"model": ErrorBody, "description": "codes: " + ", ".join(sorted(set(names)))}
        for status, names in sorted(by_status.items())
    }


def error_response(
    code: ErrorCode, loc: list[str | int] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    item = ErrorItem(loc=loc or [], code=code.value, message=message_for(code))
    status = status_for(code)
    extra = dict(headers or {})
    if status == 401:
        extra["WWW-Authenticate"] = "Bearer"
    if status == 503:
        extra["Retry-After"] = RETRY_AFTER_SECONDS
    return JSONResponse(
        ErrorBody(detail=[item]).model_dump(), status_code=status, headers=extra or None
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ApiError):  # registered for it only
        raise exc
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(exc.code, exc.loc, headers)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    errors = exc.errors()
    if any(err["type"] == "json_invalid" for err in errors):
        return error_response(ErrorCode.MALFORMED_BODY, ["body"])
    # FastAPI parses a body as JSON only when it says so; anything else it hands to the
    # model as bytes, which would read as a 422 on the whole body.
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if has_body and not _is_json(request.headers.get("content-type")):
        return error_response(ErrorCode.UNSUPPORTED_MEDIA_TYPE, ["header", "content-type"])
    items = []
    for err in errors:
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldRuleError):
            code, message = cause.code, str(cause)
        else:
            code = ErrorCode.INVALID_INPUT.value
            message = PYDANTIC_MESSAGES.get(err["type"], message_for(code))
        loc = [part for part in err["loc"] if isinstance(part, str | int)]
        items.append(ErrorItem(loc=loc, code=code, message=message))
    return JSONResponse(ErrorBody(detail=items).model_dump(), status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # registered for it only
        raise exc
    code = HTTP_CODES.get(exc.status_code)
    if code is None:  # no route raises one; if a library does, it is not the client's fault
        log.error("unmapped HTTP %s from a library", exc.status_code)
        code = ErrorCode.INTERNAL_ERROR
    return error_response(code, headers=dict(exc.headers or {}))


async def _temporal_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RPCTimeoutOrCancelledError):  # the server holds the call: no worker
        return error_response(ErrorCode.WORKER_UNAVAILABLE)
    if isinstance(exc, RPCError) and exc.status in OUTAGE_STATUSES:
        log.warning("Temporal unavailable: %s", exc.status.name)
        return error_response(ErrorCode.SERVICE_UNAVAILABLE)
    log.exception("unexpected answer from Temporal", exc_info=exc)
    return error_response(ErrorCode.INTERNAL_ERROR)


async def _store_error(_: Request, exc: Exception) -> JSONResponse:
    # The driver's message may quote SQL parameters (personal data): log the type only.
    log.warning("store unavailable: %s", type(exc).__name__)
    return error_response(ErrorCode.SERVICE_UNAVAILABLE)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Starlette's server-error middleware calls this, sends the answer, then re-raises so
    # that the server logs the traceback.
    return error_response(ErrorCode.INTERNAL_ERROR)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before anything parses them.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is
    counted as it streams and refused when the count passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _send_too_large(scope, receive, send)
            return
        counted = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal counted
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body, so
                    # the app's handler answers it in our shape.
                    raise HTTPException(413)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _send_too_large(scope, receive, send)


async def _send_too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(ErrorCode.BODY_TOO_LARGE, headers={"Connection": "close"})
    await response(scope, receive, send)


def _add_request_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Document the errors every route can get from the HTTP layer itself."""
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            codes = [ErrorCode.METHOD_NOT_ALLOWED, ErrorCode.INTERNAL_ERROR]
            if "requestBody" in operation:
                codes += [
                    ErrorCode.MALFORMED_BODY,
                    ErrorCode.BODY_TOO_LARGE,
                    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                ]
            for code in codes:
                status = str(status_for(code))
                if status in responses:
                    described = responses[status].get("description", "")
                    if code.value not in described:
                        names = described.removeprefix("codes: ").split(", ")
                        names = sorted({*filter(None, names), code.value})
                        responses[status]["description"] = "codes: " + ", ".join(names)
                else:
                    responses[status] = {"description": f"codes: {code.value}", **ref}
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                if status == "422" and "HTTPValidationError" in str(content):
                    content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
    return spec


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(RPCTimeoutOrCancelledError, _temporal_error)
    for outage in (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,
        sqlalchemy.exc.DisconnectionError,
    ):
        app.add_exception_handler(outage, _store_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = _add_request_errors(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
