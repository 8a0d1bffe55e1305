"""The codec server: lets the Temporal UI (and CLI) show decrypted payloads to operators.

Protocol: POST ``…/encode`` or ``…/decode`` with a ``Payloads`` message as protobuf JSON,
answered in kind. Refused unless the caller is allowed: an operator's credentials (role
viewer or higher, as ``api/deps.py`` reads them; each use is audited under their name),
the configured codec token, or (local UI mode, for ``make run``) a loopback client that
addressed us by a loopback name or the UI's host. Without that ``Host`` check a page on any
site could rebind its own name to 127.0.0.1 and read decrypted personal data through the
operator's browser (DNS rebinding). A payload that cannot be parsed, opened or sealed is a
422, never a 500.
"""

from __future__ import annotations

import hmac
from typing import Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from starlette.concurrency import run_in_threadpool
from temporalio.api.common.v1 import Payloads

from api.deps import EngineDep, SettingsDep, authenticate_operator, request_action
from api.errors import ApiError, error_responses
from api.security import OperatorSessions
from config import Settings
from domain.errors import ErrorCode
from store import audit
from store.operators import TOKEN_PREFIX

router = APIRouter(prefix="/codec", tags=["operators"])
LOOPBACK = {"127.0.0.1", "::1"}
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


def _cors(response: Response, request: Request, settings: Settings) -> None:
    origin = request.headers.get("origin")
    if origin and origin in settings.codec_cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = (
            "Content-Type, X-Namespace, Authorization"
        )
        response.headers["Vary"] = "Origin"


def _operator_credentials(request: Request) -> bool:
    """Whether the request carries an operator's credentials (a personal token, a signed
    operator session, or Basic name:token from the sign-in proxy). Anything else is judged
    as before: the codec token or the local UI."""
    sent = request.headers.get("authorization", "")
    if sent.startswith("Basic ") or sent.startswith("Bearer " + TOKEN_PREFIX):
        return True
    sessions: OperatorSessions = request.app.state.operator_sessions
    return sent.startswith("Bearer ") and sessions.name(sent[7:]) is not None


def _allowed(request: Request, settings: Settings) -> bool:
    token = settings.codec_server_token.get_secret_value() if settings.codec_server_token else ""
    sent = request.headers.get("authorization", "")
    if token and sent.startswith("Bearer "):  # an empty configured token is no token
        return hmac.compare_digest(sent[7:].encode(), token.encode())
    client = request.client.host if request.client else ""
    return settings.codec_server_local_ui and client in LOOPBACK and _local_names(request, settings)


def _local_names(request: Request, settings: Settings) -> bool:
    """Local UI mode: we were addressed by a loopback name or the UI's host, and a browser
    request comes from the configured UI origin."""
    host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
    allowed = LOOPBACK_NAMES | {urlsplit(o).hostname or "" for o in settings.codec_cors_origins}
    origin = request.headers.get("origin")
    return host in allowed and (origin is None or origin in settings.codec_cors_origins)


@router.options("/{operation}", include_in_schema=False)
async def preflight(operation: str, request: Request, settings: SettingsDep) -> Response:
    response = Response(status_code=200)
    _cors(response, request, settings)
    return response


@router.post(
    "/{operation}",
    responses={
        200: {"description": "Payloads (protobuf JSON)", "content": {"application/json": {}}},
        **error_responses(
            ErrorCode.CODEC_FORBIDDEN,
            ErrorCode.CODEC_PAYLOAD_INVALID,
            ErrorCode.OPERATOR_UNAUTHENTICATED,
            ErrorCode.OPERATOR_DISABLED,
        ),
    },
)
async def transcode(
    operation: Literal["encode", "decode"],
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
) -> Response:
    """Encode or decode payloads with the configured keys (operators only)."""
    if _operator_credentials(request):
        # 401/403 for wrong, revoked or disabled credentials, audited by the dependency
        caller = await run_in_threadpool(authenticate_operator, request, engine)
        await run_in_threadpool(
            audit.record,
            engine,
            operator=caller.name,
            action=request_action(request),
            outcome=audit.OK,
            workflow_id=request.headers.get("x-workflow-id"),
        )
    elif not _allowed(request, settings):
        raise ApiError(ErrorCode.CODEC_FORBIDDEN)
    codec = request.app.state.codec
    step = codec.encode if operation == "encode" else codec.decode
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
        result = Payloads(payloads=await step(list(payloads.payloads)))
    except (json_format.ParseError, ValueError, KeyError, InvalidTag, DecodeError):
        # Not JSON, bad base64, an unknown key ID, tampered ciphertext, garbage inside.
        raise ApiError(ErrorCode.CODEC_PAYLOAD_INVALID, loc=["body"]) from None
    response = Response(json_format.MessageToJson(result), media_type="application/json")
    _cors(response, request, settings)
    return response
