"""schemathesis over the whole OpenAPI, against the real app with a dev server and worker.

Every operation gets a bounded number of generated requests (valid and invalid), sent
in-process over ASGI. Each response must be no server error (5xx other than a documented
503) and must match the documented status codes, content type and schema. Requests carry
a real customer's bearer token, the system key and a real signup session, so the
generated bodies reach the workflows, not only the authentication (which other tests
cover).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from api.main import create_app
from tests.api.conftest import SYSTEM_KEY, Stack
from tests.factories import add_customer

# Per operation; ~21 operations. SCHEMATHESIS_EXAMPLES raises it for a longer hunt.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _httpx_kwargs(case: Any, real: dict[str, str]) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url="http://api")
    headers = {k: v for k, v in sent["headers"].items() if isinstance(v, str)}
    # Real credentials replace made-up ones, so the bodies reach the workflows.
    headers = {k: v for k, v in headers.items() if k.lower() not in {h.lower() for h in real}}
    kwargs: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": {**headers, **real},
        "params": sent.get("params") or None,
    }
    if "json" in sent:
        kwargs["json"] = sent["json"]
    elif sent.get("data") is not None:
        kwargs["content"] = sent["data"]
    return kwargs


async def signup_session(stack: Stack) -> str:
    """A real signup session: a link requested, read from the mail, and begun."""
    email = "schemathesis.signup@example.com"
    await stack.call("POST", "/v1/points/signups", json={"email": email})
    [mail] = [m for m in await stack.sink.wait_for(2) if m.envelope_to == [email]]
    [link] = [link for link in mail.links if "#" in link]
    begun = await stack.call(
        "POST",
        "/v1/points/begin",
        json={"token": link.split("#", 1)[1], "service": "omron_monitoring"},
    )
    assert begun.status_code == 200, begun.text
    session: str = begun.json()["session"]
    return session


async def test_the_api_keeps_to_its_openapi(stack: Stack) -> None:
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    started = await stack.call("POST", "/v1/journey", headers=auth)
    assert started.status_code == 200
    real = {
        **auth,
        "X-System-Key": SYSTEM_KEY,
        "X-Signup-Session": await signup_session(stack),
    }
    schema = schemathesis.openapi.from_dict(create_app(stack.settings).openapi())
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    seen: dict[tuple[str, str, int], int] = {}

    def send(case: Any) -> httpx.Response:
        request = stack.http.request(**_httpx_kwargs(case, real))
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)

    def hunt(operation: Any) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = send(case)
            seen[(case.method, case.path, response.status_code)] = (
                seen.get((case.method, case.path, response.status_code), 0) + 1
            )
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as err:  # collected: one report for every operation
                failures.append(f"{case.method} {case.path} → {response.status_code}: {err}")

        check()

    def hunt_all() -> None:
        for result in schema.get_all_operations():
            hunt(result.ok())  # type: ignore[union-attr]  # an Err fails loudly here

    await asyncio.to_thread(hunt_all)
    print("\n".join(f"{m} {p} {s}: {n}" for (m, p, s), n in sorted(seen.items())))
    assert not failures, "\n\n".join(failures[:20])
