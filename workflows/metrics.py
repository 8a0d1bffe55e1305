"""Metrics recorded from workflow code, through the SDK's workflow metric meter.

``workflow.metric_meter()`` records nothing while a workflow replays, so a counter moves
once per real event however often the history is replayed (worker restarts, cache
evictions). The worker exports these with the Temporal SDK's own metrics (the runtime's
Prometheus endpoint, ``ECOKATSU_TEMPORAL_METRICS_PORT``); the SDK adds the labels
``namespace``, ``task_queue`` and ``workflow_type``. Side effects (mails, links issued,
registrations) are counted where they happen instead, in the activities
(``activities/metrics.py``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


def stage_entered(stage: str, previous: str | None, time_in_previous: timedelta | None) -> None:
    """A journey entered ``stage``; it spent ``time_in_previous`` in ``previous``."""
    meter = workflow.metric_meter()
    meter.create_counter("ecokatsu_stage_entered", "journeys entering each stage").add(
        1, {"stage": stage}
    )
    if previous is not None and time_in_previous is not None:
        meter.create_histogram_timedelta(
            "ecokatsu_time_in_stage", "how long a journey stayed in a stage", unit="ms"
        ).record(time_in_previous, {"stage": previous})


def reminder_sent(stage: str) -> None:
    workflow.metric_meter().create_counter(
        "ecokatsu_reminders", "reminders decided (the mail itself: ecokatsu_mails_total)"
    ).add(1, {"stage": stage})


def signup_link(event: str) -> None:
    """``used`` (the first form submission spent it) or ``expired`` (unused in time)."""
    workflow.metric_meter().create_counter(
        "ecokatsu_signup_links", "signup links used or expired"
    ).add(1, {"event": event})


def signup_stage_entered(stage: str) -> None:
    """A signup entered ``stage`` (``signup_<status>``, as its ``EcoStage`` says)."""
    workflow.metric_meter().create_counter(
        "ecokatsu_signup_stage_entered", "signups entering each stage"
    ).add(1, {"stage": stage})
