"""The fault suite's figures, its table, and the promises it checks (with evidence)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.faults.journey import Journey, Shared
    from tests.faults.processes import ProcEvent

EVIDENCE_LINES = 12


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the first journey started
    back_after: float | None = None  # seconds until the part served again


@dataclass
class Report:
    duration: float
    first_journey_at: float  # every time in the report is seconds since the stack started
    workdir: str
    faults: list[Fault]
    unplanned_exits: dict[str, int]
    process_events: list[str]
    journeys: int
    finished: int
    lost: list[str]
    stuck: list[str]
    mails: int
    duplicate_mails: int  # copies beyond the first, same Message-ID or same key
    duplicate_evidence: list[str]
    links: int
    dead_links: list[str]
    spent_unheard: list[str]  # links spent by a request whose answer the customer lost
    statuses: dict[str, int]
    server_errors: dict[str, int]  # 5xx other than 503, by status
    server_error_evidence: list[str]
    retry_conflicts: list[str]
    missing_mails: list[str]
    notes: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """Each broken promise, with its figure."""
        failed = []
        if self.finished != self.journeys:
            failed.append(
                f"all journeys finish: {self.finished} of {self.journeys} enrolled, "
                f"{len(self.stuck)} stuck"
            )
        if self.lost:
            failed.append(f"nothing lost: {len(self.lost)} announced accounts got no journey")
        if self.duplicate_mails:
            failed.append(f"no mail sent twice: {self.duplicate_mails} duplicate mails")
        if self.dead_links:
            failed.append(f"every mailed link works: {len(self.dead_links)} dead links")
        if self.server_errors:
            failed.append(
                "no 5xx but 503: "
                + ", ".join(f"{n}× {s}" for s, n in sorted(self.server_errors.items()))
            )
        if self.retry_conflicts:
            failed.append(
                f"a retried request gets the first attempt's answer: {len(self.retry_conflicts)} "
                "retries refused because of their own first attempt"
            )
        return failed

    def table(self) -> str:
        rows: list[tuple[str, str]] = [
            ("times", f"s since the stack started; journeys from {self.first_journey_at:.1f} s")
        ]
        for f in self.faults:
            back = f"back after {f.back_after} s" if f.back_after is not None else "not back"
            rows.append((f"fault at {f.at:5.1f} s", f"{f.kind} ({back})"))
        unplanned = ", ".join(f"{k} {v}" for k, v in self.unplanned_exits.items() if v)
        rows.append(("unplanned process exits", unplanned or "none"))
        rows.append(("journeys", str(self.journeys)))
        rows.append(("  finished (enrolled)", str(self.finished)))
        rows.append(("  lost", str(len(self.lost))))
        rows.append(("  stuck", str(len(self.stuck))))
        rows.append(("mails delivered", str(self.mails)))
        rows.append(("  duplicate mails", str(self.duplicate_mails)))
        rows.append(("  missing at the end", str(len(self.missing_mails))))
        rows.append(("signup links mailed", str(self.links)))
        rows.append(("  dead links", str(len(self.dead_links))))
        rows.append(("  spent by a lost answer", str(len(self.spent_unheard))))
        rows.append(("retries refused by their own first attempt", str(len(self.retry_conflicts))))
        rows.append(("responses by status", ""))
        for status, n in sorted(self.statuses.items()):
            rows.append((f"  {status}", str(n)))
        fivexx = ", ".join(f"{s}: {n}" for s, n in sorted(self.server_errors.items()))
        rows.append(("5xx other than 503, by code", fivexx or "none"))
        rows.append(("duration", f"{self.duration:.0f} s"))
        width = max(len(r[0]) for r in rows)
        lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
        failures = self.failures()
        lines.append("")
        lines.append("RESULT: " + ("all promises kept" if not failures else "BROKEN PROMISES"))
        lines += [f"  - {f}" for f in failures]
        for title, evidence in (
            ("stuck journeys", self.stuck),
            ("lost journeys", self.lost),
            ("5xx responses", self.server_error_evidence),
            ("duplicate mails", self.duplicate_evidence),
            ("dead links", self.dead_links),
            ("links spent by a lost answer", self.spent_unheard),
            ("retries refused by their own first attempt", self.retry_conflicts),
            ("mails missing at the end", self.missing_mails),
            ("process events", self.process_events),
        ):
            if evidence:
                lines.append(f"{title} ({len(evidence)}):")
                lines += [f"    {e}" for e in evidence[:EVIDENCE_LINES]]
                if len(evidence) > EVIDENCE_LINES:
                    lines.append(f"    … {len(evidence) - EVIDENCE_LINES} more in report.json")
        lines.append(f"logs, mails and report.json: {self.workdir}")
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8")


def build_report(
    *,
    journeys: list[Journey],
    shared: Shared,
    faults: list[Fault],
    events: list[ProcEvent],
    unplanned: dict[str, int],
    duration: float,
    first_journey_at: float,
    workdir: Path,
) -> Report:
    from tests.faults.scenario import missing_mails

    mails = shared.mailbox.scan()
    by_id: dict[str, list[str]] = defaultdict(list)
    by_key: dict[str, list[str]] = defaultdict(list)
    links_of: dict[str, set[str]] = defaultdict(set)
    for m in mails:
        by_id[m.message_id].append(m.file)
        links_of[m.message_id].update(m.tokens)
        if m.idempotency_key:
            by_key[m.idempotency_key].append(m.file)
    duplicates = sum(len(v) - 1 for v in by_id.values()) + sum(
        len(v) - 1 for k, v in by_key.items() if len(by_id.get(k, [])) <= 1
    )
    kind_of = {m.file: (m.kind, m.to, m.arrived) for m in mails}
    duplicate_evidence = []
    for message_id, files in by_id.items():
        if len(files) > 1:
            kind, to, _ = kind_of[files[0]]
            arrivals = ", ".join(f"{kind_of[f][2]:.1f} s" for f in files)
            distinct = len(links_of[message_id])
            duplicate_evidence.append(
                f"{len(files)}× Message-ID {message_id} ({kind} to {to}) at {arrivals}"
                + (f"; {distinct} different links in them" if distinct > 1 else "")
            )

    dead = []
    spent_unheard = []
    for seen in shared.links.values():
        observed = ", ".join(
            f"{state} at {at:.1f} s ({who})" for at, state, who in seen.observations
        )
        if seen.dead_observations():
            dead.append(
                f"journey {seen.journey}: link …{seen.token[-6:]} in {seen.mail_file} "
                f"(Message-ID {seen.message_id}, delivered {seen.arrived:.1f} s): {observed}"
            )
        if not seen.used and any(s == "link_used" for _, s, _ in seen.observations):
            spent_unheard.append(
                f"journey {seen.journey}: link …{seen.token[-6:]} spent, the customer got no "
                f"session: {observed}"
            )

    statuses = Counter(e.outcome for e in shared.api.exchanges)
    server = [e for e in shared.api.exchanges if e.status is not None and e.status >= 500]
    server = [e for e in server if e.status != 503]
    server_errors = Counter(str(e.status) for e in server)
    grouped = Counter((e.method, e.path, e.status, e.excerpt[:80]) for e in server)
    server_evidence = [
        f"{n}× {method} {path} → {status} {excerpt!r}"
        for (method, path, status, excerpt), n in grouped.most_common()
    ]
    server_evidence += [
        f"first: {e.at:.1f} s journey {e.journey} {e.method} {e.path} → {e.status} "
        f"after {e.elapsed:.1f} s"
        for e in server[:3]
    ]

    return Report(
        duration=round(duration, 1),
        first_journey_at=round(first_journey_at, 1),
        workdir=str(workdir),
        faults=sorted(faults, key=lambda f: f.at),
        unplanned_exits=unplanned,
        process_events=[f"{e.at:6.1f} s {e.name}: {e.what}" for e in events],
        journeys=len(journeys),
        finished=sum(j.finished for j in journeys),
        lost=[f"journey {j.index}: {'; '.join(j.notes)}" for j in journeys if j.lost],
        stuck=[
            f"journey {j.index}: stage {j.stage}, last step {j.last_step}; {'; '.join(j.notes)}"
            for j in journeys
            if not j.finished
        ],
        mails=len(mails),
        duplicate_mails=duplicates,
        duplicate_evidence=duplicate_evidence,
        links=len(shared.links),
        dead_links=dead,
        spent_unheard=spent_unheard,
        statuses=dict(statuses),
        server_errors=dict(server_errors),
        server_error_evidence=server_evidence,
        retry_conflicts=shared.retry_conflicts,
        missing_mails=missing_mails(shared, journeys),
        notes=[f"journey {j.index}: {n}" for j in journeys for n in j.notes],
    )
