"""The FastAPI application: one Temporal client and one engine for the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api import errors
from api.deps import TemporalConnection
from api.errors import ApiError
from api.metrics import MetricsMiddleware, metrics_endpoint
from api.middleware import SecurityHeaders, add_docs
from api.ratelimit import StoreLimiter
from api.routes import (
    codec,
    confirmation,
    enrollment,
    member,
    operator,
    operator_auth,
    session,
    signup,
    system,
)
from api.security import MemberTokens, OperatorSessions, SessionTokens, SignupSessions
from api.services.signup_requests import SignupRequests
from api.web import install as install_web
from codec import AesGcmCodec
from config import Settings, get_settings
from store.engine import make_engine

log = logging.getLogger(__name__)

DESCRIPTION = """
Enrollment into OMRON's みんなでつくるエコ活サークル, one durable Temporal workflow per
customer. Errors always have the body `{"detail": [{"loc", "code", "message"}]}`: `code`
is stable, `message` is Japanese, and rejected input is never echoed. A 503 (the worker,
the Temporal server or the store is unavailable) carries `Retry-After`; retry the same
request with the same `Idempotency-Key` header and it attaches to the first attempt.
"""


def create_app(
    settings: Settings | None = None,
    client: Client | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """Build the app; tests inject the client and engine, ``make run`` lets it connect."""
    settings = settings or get_settings()
    settings.check_secrets("the API")  # before anything listens

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = engine or make_engine(settings.database_url)
        app.state.temporal = TemporalConnection(settings, client)
        try:  # connect now if we can; if not, the API still starts and answers 503
            await app.state.temporal.get()
        except ApiError:
            log.warning("starting without Temporal; routes that need it answer 503")
        app.state.codec = AesGcmCodec(settings.codec_key_bytes(), settings.codec_key_id)
        secret = settings.secret_key.get_secret_value()
        app.state.tokens = SessionTokens(secret, int(settings.session_max_age.total_seconds()))
        app.state.member_tokens = MemberTokens(
            secret, int(settings.session_max_age.total_seconds())
        )
        app.state.signup_sessions = SignupSessions(
            secret, int((settings.signup.abandon_after + settings.signup.link_ttl).total_seconds())
        )
        app.state.operator_sessions = OperatorSessions(
            secret, int(settings.operator_session_max_age.total_seconds())
        )
        # Login and signup-request limits, in the store: shared by every API instance.
        app.state.limiter = StoreLimiter(app.state.engine, secret)
        app.state.signup_requests = SignupRequests(app.state.engine, app.state.temporal, settings)
        drainer = asyncio.create_task(app.state.signup_requests.drain_forever())
        try:
            yield
        finally:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer

    # The docs and the schema can be turned off (ECOKATSU_API_DOCS=false); ReDoc is not
    # served (one HTML page to keep under a CSP is enough).
    openapi_url = "/openapi.json" if settings.api_docs else None
    app = FastAPI(
        title="Eco-katsu enrollment orchestrator",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=openapi_url,
        docs_url=None,
        redoc_url=None,
    )
    if openapi_url is not None:
        add_docs(app, openapi_url)
    app.add_middleware(SecurityHeaders, always_hsts=settings.hsts)
    errors.install(app, settings.max_request_body_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost: times everything, refusals included
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(session.router)
    app.include_router(enrollment.router)
    app.include_router(system.router)
    app.include_router(operator.router)
    app.include_router(signup.router)
    app.include_router(confirmation.router)
    app.include_router(member.router)
    app.include_router(member.system_router)
    app.include_router(codec.router)
    app.include_router(operator_auth.router)
    install_web(app)  # the guide's screens (api/web)

    @app.get("/healthz", tags=["system"])
    def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    return app
