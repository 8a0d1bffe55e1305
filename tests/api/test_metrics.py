"""Prometheus metrics move when a journey moves: the API's /metrics, the worker's activity
counters on their port, and the workflow and SDK metrics on the Temporal runtime's port,
with a real dev server and worker."""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from devtools.mailsink import MailSink
from store.engine import make_engine
from temporal_client import connect
from tests.api.conftest import Stack, settings_for
from tests.factories import add_customer
from tests.waiting import eventually, mails
from worker import build_worker, metrics_runtime, serve_activity_metrics

# from the range this suite's metrics tests may bind (127.0.0.1:19000–19049)
ACTIVITY_PORT, SDK_PORT = 19011, 19012


def value(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels``."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        return answer.text


async def test_api_metrics_by_route_template_and_status(stack: Stack) -> None:
    before = (await stack.call("GET", "/metrics")).text
    customer = add_customer(stack.engine)
    auth = await stack.login(customer)
    assert (await stack.call("POST", "/v1/journey", headers=auth)).status_code == 200
    gone = await stack.call(
        "DELETE", f"/v1/journey/applications/{customer.eligible_gateway}", headers=auth
    )
    assert gone.status_code == 404
    assert (await stack.call("GET", f"/no/such/{customer.account_id}")).status_code == 404
    after = (await stack.call("GET", "/metrics")).text
    responses = "ecokatsu_http_responses_total"
    for labels in (
        {"method": "POST", "route": "/v1/journey", "status": "200"},
        {"method": "POST", "route": "/v1/session", "status": "200"},
        {"method": "DELETE", "route": "/v1/journey/applications/{gateway_id}", "status": "404"},
        {"method": "GET", "route": "<unmatched>", "status": "404"},
    ):
        assert value(after, responses, **labels) == value(before, responses, **labels) + 1, labels
    latency = "ecokatsu_http_request_duration_seconds_count"
    assert (
        value(after, latency, route="/v1/journey")
        == value(before, latency, route="/v1/journey") + 1
    )
    # templates only: no ID or gateway reaches a label
    assert customer.eligible_gateway not in after and customer.account_id not in after


async def test_worker_metrics_move_when_a_journey_moves(
    dev_env: WorkflowEnvironment, sqlite_url: str, mail_sink: MailSink
) -> None:
    target = dev_env.client.service_client.config.target_host
    settings = settings_for(
        sqlite_url,
        mail_sink,
        temporal_address=target,
        task_queue=f"metrics-{uuid.uuid4().hex}",
        worker_metrics_port=ACTIVITY_PORT,
        temporal_metrics_port=SDK_PORT,
    )
    engine = make_engine(sqlite_url)
    # the worker as worker.py builds it: its own runtime exports the SDK's metrics
    worker_client = await connect(settings, runtime=metrics_runtime(settings))
    server = serve_activity_metrics(settings)
    assert server is not None
    activity_url = f"http://127.0.0.1:{ACTIVITY_PORT}/metrics"
    sdk_url = f"http://127.0.0.1:{SDK_PORT}/metrics"
    app = create_app(settings, client=dev_env.client, engine=engine)
    queue = {"task_queue": settings.task_queue}
    try:
        before = await scrape(activity_url)
        sent = "ecokatsu_mails_total"
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with (
                build_worker(worker_client, settings, engine, executor),
                app.router.lifespan_context(app),
            ):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                    stack = Stack(http, settings, engine, mail_sink, dev_env.client)
                    customer = add_customer(engine)
                    auth = await stack.login(customer)
                    assert (
                        await stack.call("POST", "/v1/journey", headers=auth)
                    ).status_code == 200
                    await mails(mail_sink, 1)
                    invitations = await eventually(
                        lambda: _grew(
                            activity_url, before, sent, kind="invitation", outcome="sent"
                        ),
                        what="the invitation counted as sent",
                    )
                    assert invitations == 1
                    entered = "ecokatsu_stage_entered_total"
                    await eventually(
                        lambda: _at_least(sdk_url, entered, 1, stage="awaiting_consent", **queue),
                        what="awaiting_consent entered",
                    )
                    assert (
                        value(await scrape(sdk_url), entered, stage="awaiting_application", **queue)
                        == 0
                    )
                    terms = (await stack.call("GET", "/v1/terms")).json()
                    consent = await stack.call(
                        "POST",
                        "/v1/journey/consent",
                        headers=auth,
                        json={"agree": True, "terms_version": terms["version"]},
                    )
                    assert consent.json()["stage"] == "awaiting_application"
                    await eventually(
                        lambda: _at_least(
                            sdk_url, entered, 1, stage="awaiting_application", **queue
                        ),
                        what="awaiting_application entered",
                    )
                    sdk = await scrape(sdk_url)
                    # time spent in awaiting_consent observed once; the SDK's own metrics too
                    assert (
                        value(
                            sdk, "ecokatsu_time_in_stage_count", stage="awaiting_consent", **queue
                        )
                        == 1
                    )
                    assert value(sdk, "temporal_workflow_completed_total", **queue) == 0
                    assert "temporal_workflow_task_execution_latency" in sdk
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()


async def _grew(url: str, before: str, sample: str, **labels: str) -> float | None:
    grown = value(await scrape(url), sample, **labels) - value(before, sample, **labels)
    return grown or None


async def _at_least(url: str, sample: str, least: float, **labels: str) -> bool:
    return value(await scrape(url), sample, **labels) >= least


def test_a_busy_metrics_port_does_not_stop_a_worker(sqlite_url: str, mail_sink: MailSink) -> None:
    """A second worker on the same host finds both ports taken: it runs without them."""
    busy = settings_for(
        sqlite_url, mail_sink, worker_metrics_port=19013, temporal_metrics_port=19014
    )
    holders = []
    for port in (19013, 19014):
        held = socket.socket()
        held.bind(("127.0.0.1", port))
        held.listen()
        holders.append(held)
    try:
        assert serve_activity_metrics(busy) is None
        assert metrics_runtime(busy) is None
    finally:
        for held in holders:
            held.close()
