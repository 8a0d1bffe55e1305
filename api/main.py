"""The FastAPI application: one Temporal client and one engine for the process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api import errors
from api.deps import TemporalConnection
from api.errors import ApiError
from api.ratelimit import SlidingWindowLimiter
from api.routes import codec, confirmation, enrollment, session, signup, system
from api.security import SessionTokens, SignupSessions
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
        app.state.signup_sessions = SignupSessions(
            secret, int((settings.signup.abandon_after + settings.signup.link_ttl).total_seconds())
        )
        app.state.signup_limiter = SlidingWindowLimiter(settings.signup_requests_per_hour, 3600)
        yield

    app = FastAPI(
        title="Eco-katsu enrollment orchestrator", description=DESCRIPTION, lifespan=lifespan
    )
    errors.install(app, settings.max_request_body_bytes)
    app.include_router(session.router)
    app.include_router(enrollment.router)
    app.include_router(system.router)
    app.include_router(signup.router)
    app.include_router(confirmation.router)
    app.include_router(codec.router)
    install_web(app)  # the guide's screens (api/web)

    @app.get("/healthz", tags=["system"])
    def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    return app
