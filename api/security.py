"""Password hashing (argon2id) and session tokens.

Passwords are hashed here, in the API, and nowhere else: no workflow, log or mail ever
sees one. Session tokens are signed (itsdangerous) and expire; they carry only the opaque
account ID.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Each hash takes 64 MiB and ~0.1-0.2 s of CPU on purpose. They run on their own small
# pool, one per two cores (at least one): a burst of logins queues here, holding neither
# the API's shared thread pool (every sync dependency needs it) nor more than half the
# cores, so the journey steps go on being answered meanwhile.
HASH_SLOTS = max(1, (os.cpu_count() or 1) // 2)
_hashing = ThreadPoolExecutor(max_workers=HASH_SLOTS, thread_name_prefix="argon2")
# Verified against when the user ID is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        ok = _hasher.verify(stored_hash or _DUMMY_HASH, password)
        return ok and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    """Hash on the hashing pool, blocking the calling thread (CLI, store callbacks)."""
    return _hashing.submit(_hasher.hash, password).result()


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Verify on the hashing pool, blocking the calling thread; against a dummy hash
    when there is none (the same time either way)."""
    return _hashing.submit(_verify, stored_hash, password).result()


async def hash_password_async(password: str) -> str:
    """``hash_password`` for the event loop: awaits the hashing pool, holds no thread."""
    return await asyncio.wrap_future(_hashing.submit(_hasher.hash, password))


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """``verify_password`` for the event loop: awaits the hashing pool, holds no thread."""
    return await asyncio.wrap_future(_hashing.submit(_verify, stored_hash, password))


class SignupSessions:
    """The points signup's session after its link was used: signup ID and link number."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="eco-katsu-signup-session")
        self._max_age = max_age_seconds

    def issue(self, signup_id: str, seq: int) -> str:
        return self._serializer.dumps({"s": signup_id, "q": seq})

    def read(self, token: str) -> tuple[str, int] | None:
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        signup_id, seq = data.get("s"), data.get("q")
        if isinstance(signup_id, str) and isinstance(seq, int):
            return signup_id, seq
        return None


class SessionTokens:
    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="eco-katsu-session")
        self._max_age = max_age_seconds

    def issue(self, account_id: str) -> str:
        return self._serializer.dumps({"a": account_id})

    def account_id(self, token: str) -> str | None:
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except BadSignature:
            return None
        value = data.get("a") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None


class OperatorSessions:
    """An operator's session after a password login (``POST /v1/operator/session``): the
    signed operator name. Whether the operator is still enabled is checked per request."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="eco-katsu-operator-session")
        self._max_age = max_age_seconds

    def issue(self, name: str) -> str:
        return self._serializer.dumps({"o": name})

    def name(self, token: str) -> str | None:
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except BadSignature:
            return None
        value = data.get("o") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None


class MemberTokens:
    """A スマイルeポイント member's session: its own signed token kind (its own salt), so a
    circle session token is never a member's, nor the other way round."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="eco-katsu-member-session")
        self._max_age = max_age_seconds

    def issue(self, member_id: int) -> str:
        return self._serializer.dumps({"m": member_id})

    def member_id(self, token: str) -> int | None:
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except BadSignature:
            return None
        value = data.get("m") if isinstance(data, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None
