"""Run a worker for every workflow and activity on the task queue, and one for the mails
on the mails' task queue when ``ECOKATSU_MAIL_TASK_QUEUE`` is set.

``python worker.py`` waits for Temporal, registers the search attributes, and polls until
interrupted; ``--only workflows`` and ``--only mail`` serve one queue each, a process each
(rendering and SMTP then never take the CPU the workflows' tasks need; ``make run`` and
docker-compose run one plain worker: on 2 cores the split measured no gain, README,
Benchmarks). The store is migrated beforehand (``python cli.py migrate``), once, not by
each of several workers at the same time.

Beside the worker, the same process runs the reconciler of journey starts
(``journey_starts.py``): announced accounts whose journey could not be started while the
Temporal server was unreachable are started from the store's outbox. It runs in every
worker, because a worker is what a journey needs anyway and is what the deployment scales;
the starts are claimed with a lease, so several workers never start one twice.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client
import uvloop
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.enrollment import EnrollmentActivities
from activities.holder import HolderActivities
from activities.mail import MailActivities, MailRenderer, SmtpSettings
from activities.member import MemberActivities
from activities.signup import SignupActivities
from config import Settings, UnsafeSecrets, get_settings
from domain.jst import format_duration
from journey_starts import JourneyStartReconciler
from store.engine import make_engine
from temporal_client import connect, ensure_search_attributes
from workflow_runner import workflow_runner
from workflows.enrollment import EnrollmentWorkflow
from workflows.member import MemberWorkflow
from workflows.signup import SignupWorkflow

WORKFLOWS = [EnrollmentWorkflow, SignupWorkflow, MemberWorkflow]
log = logging.getLogger("worker")


def mail_renderer(settings: Settings) -> MailRenderer:
    return MailRenderer(
        {
            "monitoring_site_url": settings.monitoring_site_url,
            "circle_info_url": settings.circle_terms_url,
            "points_signup_url": settings.points_signup_url,
            "support_phone": settings.support.phone,
            "support_hours": settings.support.hours,
            "link_ttl": format_duration(settings.signup.link_ttl),
            "points_login_url": settings.points_login_url,
            "points_inquiry_url": settings.points_inquiry_url,
            "points_terms_url": settings.points_terms_url,
            "points_privacy_url": settings.points_privacy_url,
        }
    )


def smtp_settings(settings: Settings) -> SmtpSettings:
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.mail_from,
        points_sender=settings.points_mail_from,
        domain=settings.mail_domain,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_start_tls,
        timeout=settings.smtp_timeout_seconds,
    )


@dataclass(frozen=True)
class Activities:
    """The activity objects of one worker process (both of its workers share them)."""

    registry: EnrollmentActivities
    mail: MailActivities
    signup: SignupActivities
    holder: HolderActivities
    member: MemberActivities

    @classmethod
    def of(cls, settings: Settings, engine: Engine) -> Activities:
        mail = MailActivities(engine, smtp_settings(settings), mail_renderer(settings))
        return cls(
            registry=EnrollmentActivities(engine),
            mail=mail,
            signup=SignupActivities(
                engine,
                mail,
                settings.points_registration_url,
                settings.signup_link_key.get_secret_value().encode(),
            ),
            holder=HolderActivities(
                engine, mail, settings.holder_confirmation_url, settings.holder_token_key()
            ),
            member=MemberActivities(engine, mail, settings.points_email_change_url),
        )

    def mailing(self) -> list[Callable[..., Any]]:
        """The activities that send a mail (the workflows' ``mail_in_background``)."""
        return [
            self.mail.send_mail,
            self.signup.send_link,
            self.holder.mail_holder_confirmation,
            self.holder.mail_registration_notice,
        ]


def build_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    executor: ThreadPoolExecutor,
    activities: Activities | None = None,
) -> Worker:
    """The worker of ``task_queue``: every workflow and every activity (the mailing ones
    too, for runs whose mails are on this queue)."""
    acts = activities or Activities.of(settings, engine)
    registry, signup, holder, member = acts.registry, acts.signup, acts.holder, acts.member
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        # The sandbox, minus its entries for payload contexts (workflow_runner.py).
        workflow_runner=workflow_runner(client.data_converter),
        activities=[
            registry.check_eligibility,
            registry.record_consent,
            registry.record_application,
            registry.cancel_application,
            registry.cancel_application_carrying_status,
            registry.mark_points_member_suspended,
            registry.publish_status,
            *acts.mailing(),
            signup.record_link,
            signup.issue_link,  # for runs recorded before record_link/send_link
            signup.match_gateway,
            signup.register_member,
            signup.release_signup,
            holder.check_gateway,
            holder.ask_holder,
            holder.record_holder_decision,
            member.issue_email_change,
            member.apply_email_change,
            member.expire_email_change,
            member.cancel_membership,
        ],
        activity_executor=executor,
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        # No payload is stored outside the history (codec.py), so the SDK's second walk of
        # every activation and completion finds nothing to fetch or store: one payload at a
        # time, not an asyncio task per payload list (the SDK's default, 3 at once).
        max_workflow_task_external_storage_concurrency=1,
        graceful_shutdown_timeout=settings.worker_graceful_shutdown,
    )


def build_mail_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    executor: ThreadPoolExecutor,
    activities: Activities | None = None,
) -> Worker:
    """The worker of ``mail_task_queue``: the mailing activities only."""
    acts = activities or Activities.of(settings, engine)
    return Worker(
        client,
        task_queue=settings.mail_task_queue,
        activities=acts.mailing(),
        activity_executor=executor,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=settings.worker_graceful_shutdown,
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime that serves the SDK's metrics (task latencies, slots, polls…)
    and the workflows' own (``workflows/metrics.py``) in Prometheus format on
    ``temporal_metrics_port``; None (the default runtime, no export) when it is 0."""
    if not settings.temporal_metrics_port:
        return None
    address = f"{settings.worker_metrics_host}:{settings.temporal_metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:  # "Failed starting Prometheus exporter: Address already in use"
        # A worker without metrics still serves journeys: a busy port (a second worker on
        # the host) must not stop it.
        log.warning("Temporal metrics not exported on %s: %s", address, err)
        return None


def serve_activity_metrics(settings: Settings) -> WSGIServer | None:
    """The activities' counters (``activities/metrics.py``) on ``worker_metrics_port``,
    served from a thread; the returned server can be shut down (tests do)."""
    if not settings.worker_metrics_port:
        return None
    try:
        server, _ = prometheus_client.start_http_server(
            settings.worker_metrics_port, addr=settings.worker_metrics_host
        )
    except OSError as err:  # a busy port must not stop a worker (see metrics_runtime)
        log.warning("activity metrics not served on port %s: %s", settings.worker_metrics_port, err)
        return None
    return server


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="worker.py",
        description="Poll the task queues until interrupted: the workflows' (with every "
        "activity and the reconciler of journey starts) and, when ECOKATSU_MAIL_TASK_QUEUE "
        "is set, the mails'.",
    )
    parser.add_argument(
        "--only",
        choices=("workflows", "mail"),
        help="serve one of them (a process each: SMTP never takes the workflows' CPU)",
    )
    return parser.parse_args(argv)


async def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    settings.check_secrets("the worker")
    if args.only == "mail" and not settings.mail_task_queue:
        sys.exit("worker.py --only mail: set ECOKATSU_MAIL_TASK_QUEUE (the mails' task queue)")
    engine = make_engine(settings.database_url)
    serve_activity_metrics(settings)
    client = await connect(settings, wait=60, runtime=metrics_runtime(settings))
    await ensure_search_attributes(client, settings.temporal_namespace)
    threads = (
        settings.worker_max_concurrent_activities + settings.worker_max_concurrent_local_activities
    )
    with ThreadPoolExecutor(max_workers=threads) as executor:
        activities = Activities.of(settings, engine)
        workers: list[Worker] = []
        if args.only != "mail":
            workers.append(build_worker(client, settings, engine, executor, activities))
        if args.only != "workflows" and settings.mail_task_queue:
            workers.append(build_mail_worker(client, settings, engine, executor, activities))
        for worker in workers:
            log.info("polling task queue %s", worker.task_queue)
        if args.only == "workflows" and settings.mail_task_queue:
            log.info(
                "mails on %s need a worker.py --only mail (journeys keep their mail queue)",
                settings.mail_task_queue,
            )
        log.info("startup heap frozen: %d objects", freeze_startup_heap())
        # Tasks of one group: a worker that fails cancels the other, which shuts down
        # gracefully before the thread pool closes.
        async with asyncio.TaskGroup() as tasks:
            reconciler = None
            if args.only != "mail":
                reconciler = tasks.create_task(
                    JourneyStartReconciler(client, engine, settings).run()
                )
            runs = [tasks.create_task(worker.run()) for worker in workers]
            await asyncio.wait(runs)
            if reconciler is not None:
                reconciler.cancel()


def freeze_startup_heap() -> int:
    """Leave what the process built to start (modules, the SDK, the workers) out of the
    cyclic garbage collector's full collections, which otherwise walk it every time; it
    lives as long as the process anyway. Returns how many objects that is.

    A full collection stops every thread of the worker, and its length grows with the
    heap: the workflow cache (each cached workflow with its sandbox's modules) and this
    startup heap. Over 800 journeys one at a time (two runs each) they took 80–224 and
    90–284 ms each without the freeze, 12–146 and 26–156 ms with it (README,
    Benchmarks)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def run(argv: list[str]) -> None:
    """``main`` on uvloop: the SDK hands every task back through ``call_soon_threadsafe``,
    and the activities' threads, SMTP and the store's sockets all go through the loop
    (README, Benchmarks: the worker's CPU per step)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(argv))


if __name__ == "__main__":
    try:
        run(sys.argv[1:])
    except UnsafeSecrets as exc:
        sys.exit(str(exc))
