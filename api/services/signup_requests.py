"""``POST /v1/points/signups`` answers before it does any work that depends on the address.

Whether an address is a member, has a pending signup or is new must not show in the
answer, nor in its time (a member's answer used to be about 90 ms faster). So the route
only counts the request against the limits and writes one row (the same work for every
address), answers 202, and hands the row to the signup workflow afterwards: first from a
background task of the same request, and, if that fails (Temporal away, the process
killed), from the drainer every API instance runs, once the row's lease runs out. The
row's ID is the update ID, so a request handed over twice acts once.

A member's address is told by mail at most ``signup_member_notice_cap`` times per
``signup_member_notice_period``; further requests for it are dropped quietly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import BackgroundTasks, Request
from sqlalchemy.engine import Engine

from api.deps import TemporalConnection
from api.errors import ApiError
from api.ratelimit import Limit, StoreLimiter
from api.services.signup import SignupService
from config import Settings
from domain.errors import ErrorCode
from store import signup as signup_store
from store import signup_requests as queue

log = logging.getLogger("ecokatsu.signup_requests")
DRAIN_INTERVAL_SECONDS = 5.0


async def accept_signup_request(request: Request, email: str, background: BackgroundTasks) -> None:
    """The route's whole work: limits, one row, and the hand-over after the answer."""
    settings: Settings = request.app.state.settings
    limiter: StoreLimiter = request.app.state.limiter
    requests: SignupRequests = request.app.state.signup_requests
    client_address = request.client.host if request.client else "unknown"
    wait = await asyncio.to_thread(
        limiter.take,
        Limit(settings.signup_requests_per_hour, timedelta(hours=1)),
        f"signup-mail:{email}",
        f"signup-client:{client_address}",
    )
    if wait is not None:
        raise ApiError(ErrorCode.RATE_LIMITED, retry_after=wait)
    request_id = await asyncio.to_thread(requests.accept, email)
    background.add_task(requests.hand_over, request_id)


class SignupRequests:
    def __init__(
        self,
        engine: Engine,
        temporal: TemporalConnection,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine, self._temporal, self._settings = engine, temporal, settings
        self._clock = clock
        self._lease = max(1, math.ceil(settings.signup_request_lease.total_seconds()))

    def accept(self, email: str) -> str:
        return queue.record(self._engine, email, int(self._clock()), self._lease)

    async def hand_over(self, request_id: str) -> bool:
        """Open the signup and send it ``request_link``; True when the row is done with."""
        try:
            return await self._hand_over(request_id)
        except Exception:
            log.warning("signup request %s not handed over; retried later", request_id)
            return False

    async def _hand_over(self, request_id: str) -> bool:
        row = await asyncio.to_thread(queue.get, self._engine, request_id)
        if row is None:
            return True  # another instance finished it
        settings = self._settings
        if row.signup_id is None:
            since = datetime.now(UTC) - settings.signup_member_notice_period
            cap = signup_store.NoticeCap(settings.signup_member_notice_cap, since)
            ticket = await asyncio.to_thread(
                signup_store.open_signup_capped, self._engine, row.email, cap
            )
            if ticket is None:  # a member's address, already told within the period
                await asyncio.to_thread(queue.done, self._engine, request_id)
                return True
            await asyncio.to_thread(queue.remember_ticket, self._engine, request_id, ticket)
            signup_id, already_member = ticket.signup_id, ticket.already_member
        else:
            signup_id, already_member = row.signup_id, row.already_member
        # Not connected yet (the Temporal server is down): an ApiError, retried later.
        signups = SignupService(await self._temporal.get(), self._engine, settings)
        try:
            # The row's ID is the update ID: a second hand-over attaches to the first.
            await signups.send_link(signup_id, already_member, f"signup-request-{request_id}")
        except ApiError as err:
            if err.code == ErrorCode.WORKER_UNAVAILABLE:
                raise
            # A refusal (too soon or too often for this signup, or it has just closed):
            # the customer's screen said "mail sent" either way; nothing to retry.
            log.info("signup request %s refused by its signup: %s", request_id, err.code)
        await asyncio.to_thread(queue.done, self._engine, request_id)
        return True

    async def drain_once(self) -> int:
        """Hand over every request whose lease ran out; how many were done with."""
        now = int(self._clock())
        finished = 0
        for request_id in await asyncio.to_thread(queue.due, self._engine, now):
            claimed = await asyncio.to_thread(
                queue.claim, self._engine, request_id, now, self._lease
            )
            if claimed and await self.hand_over(request_id):
                finished += 1
        return finished

    async def drain_forever(self, interval: float = DRAIN_INTERVAL_SECONDS) -> None:
        while True:
            try:
                await self.drain_once()
            except Exception:
                log.warning("signup request drainer failed; retrying", exc_info=True)
            await asyncio.sleep(interval)
