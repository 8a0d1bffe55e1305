"""Counters of side effects, incremented where the side effect happens (in activities,
never in workflow code, which replays). ``worker.py`` serves them with prometheus_client on
``ECOKATSU_WORKER_METRICS_PORT``; the Temporal SDK's metrics and the workflows' own (stage
entries, time in stage, links used or expired: ``workflows/metrics.py``) are on the SDK
runtime's endpoint instead.

An activity retried after its side effect happened but before Temporal heard of it (a
worker killed at that moment) is the only way one of these counts twice; mails cannot, as
the outbox says whether this attempt really sent.
"""

from __future__ import annotations

from prometheus_client import Counter

MAILS = Counter(
    "ecokatsu_mails",
    "mails by kind and outcome: sent, already_sent (a retried activity), failed (SMTP 5xx), "
    "deferred (4xx or no connection; retried)",
    ["kind", "outcome"],
)
LINKS_ISSUED = Counter("ecokatsu_signup_links_issued", "signup links made and mailed")
REGISTRATIONS = Counter("ecokatsu_registrations", "スマイルeポイント members registered")
SIGNUPS_RELEASED = Counter(
    "ecokatsu_signups_released", "signups that ended without a member (abandoned, declined)"
)
