"""What every page of the reference web front end shares: the signed session cookie, the
CSRF token, form parsing, rendering, and the security headers.

The session is one cookie (HttpOnly, SameSite=Lax, ``Secure`` over HTTPS), signed with the
app's secret key (itsdangerous). It holds only opaque values: a CSRF token, the monitoring
login's session token (``api.security.SessionTokens``, its own expiry), the mailed link's
token until STEP1 spends it, the signup session (``SignupSessions``), and, between 登録する
and STEP6, the registered name. No personal data ever goes in a URL: every form POSTs.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import ValidationError

from api.errors import PYDANTIC_MESSAGES, ApiError
from config import Settings
from domain.errors import ErrorCode, FieldRuleError, message_for

R = TypeVar("R", bound=Response)

COOKIE = "eco_web"
# The cookie's own limit; the tokens inside carry their own, shorter expiry.
COOKIE_MAX_AGE = 8 * 24 * 3600
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "web"
STATIC = Path(__file__).resolve().parents[2] / "static"

# No inline script or style anywhere: the CSP allows only our own files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.do"],
)


@dataclass(frozen=True)
class FieldError:
    """One error: the field's id (its anchor in the summary) and the Japanese message."""

    field: str
    message: str


@dataclass
class Page:
    """One request's view of the session cookie; renders and redirects with it."""

    request: Request
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, request: Request) -> Page:
        raw = request.cookies.get(COOKIE)
        data: dict[str, Any] = {}
        if raw:
            try:
                loaded = _serializer(request).loads(raw, max_age=COOKIE_MAX_AGE)
                if isinstance(loaded, dict):
                    data = loaded
            except BadSignature:
                data = {}
        page = cls(request, data)
        if not isinstance(data.get("c"), str):
            page.set("c", secrets.token_urlsafe(24))
        return page

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings

    @property
    def csrf(self) -> str:
        return str(self.data["c"])

    def get(self, key: str) -> str | None:
        value = self.data.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            if key in self.data:
                del self.data[key]
                self.changed = True
        elif self.data.get(key) != value:
            self.data[key] = value
            self.changed = True

    async def form(self) -> dict[str, str]:
        """The POSTed form (urlencoded), after the CSRF check; raises ``CsrfFailed``."""
        body = (await self.request.body()).decode("utf-8", errors="replace")
        fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        sent = fields.get("csrf", "")
        if not sent or not hmac.compare_digest(sent.encode(), self.csrf.encode()):
            raise CsrfFailed
        return fields

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _env.get_template(template).render(
            csrf=self.csrf, dev_inbox=self.settings.web_dev_mail_dir is not None, **context
        )
        return self._finish(HTMLResponse(html, status_code=status))

    def redirect(self, url: str) -> RedirectResponse:
        """303 See Other: the POST is done, the browser GETs the next page (PRG)."""
        return self._finish(RedirectResponse(url, status_code=303))

    def _finish(self, response: R) -> R:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if self.changed:
            response.set_cookie(
                COOKIE,
                _serializer(self.request).dumps(self.data),
                max_age=COOKIE_MAX_AGE,
                httponly=True,
                samesite="lax",
                secure=self.request.url.scheme == "https",
                path="/",
            )
        return response


class CsrfFailed(Exception):
    """The form's CSRF token is missing or not this session's."""


def _serializer(request: Request) -> URLSafeTimedSerializer:
    settings: Settings = request.app.state.settings
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt="eco-katsu-web")


def errors_from_validation(
    err: ValidationError, fields: dict[tuple[str, ...], str]
) -> list[FieldError]:
    """pydantic's errors as the API reports them (``api.errors``), each on its form field.

    ``fields`` maps a model location to the form field's id; a model-level refusal (e.g.
    the postal code does not exist) is mapped by its location plus its code.
    """
    found: list[FieldError] = []
    for item in err.errors():
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldRuleError):
            code, message = cause.code, str(cause)
        else:
            code = ErrorCode.INVALID_INPUT.value
            message = PYDANTIC_MESSAGES.get(item["type"], message_for(code))
        loc = tuple(str(part) for part in item["loc"])
        target = fields.get((*loc, code)) or fields.get(loc) or _nearest(loc, fields)
        if all(e.field != target for e in found):
            found.append(FieldError(target, message))
    return found


def _nearest(loc: tuple[str, ...], fields: dict[tuple[str, ...], str]) -> str:
    for size in range(len(loc) - 1, 0, -1):
        if loc[:size] in fields:
            return fields[loc[:size]]
    return next(iter(fields.values()))


def api_error(err: ApiError, field: str = "") -> FieldError:
    return FieldError(field, message_for(err.code))


def csrf_failed(request: Request) -> HTMLResponse:
    page = Page.load(request)
    return page.render("expired_form.html", status=400, title="もう一度お試しください")
