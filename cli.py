"""Command line for developers and operators: ``python cli.py --help``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from config import ROOT, get_settings
from domain.operators import OperatorAction

app = typer.Typer(no_args_is_help=True, help=__doc__)


@app.command()
def migrate() -> None:
    """Bring the store's schema to the newest revision."""
    from store.engine import migrate as run_migrations

    run_migrations(get_settings().database_url)
    typer.echo("store migrated")


@app.command("seed-demo")
def seed_demo(
    data: Annotated[Path, typer.Option(help="Demo data file")] = ROOT / "demo" / "demo-data.json",
) -> None:
    """Load the demo accounts and gateways (idempotent: existing accounts are kept)."""
    from api.schemas import AnnounceAccountRequest
    from api.security import hash_password
    from store import enrollment as enrollment_store
    from store.engine import make_engine

    engine = make_engine(get_settings().database_url)
    for raw in json.loads(data.read_text(encoding="utf-8"))["accounts"]:
        body = AnnounceAccountRequest.model_validate(raw)
        try:
            enrollment_store.create_account(engine, *body.rows(hash_password(body.password)))
            typer.echo(f"demo account added: {body.email}")
        except enrollment_store.RuleViolation:
            typer.echo(f"demo account kept: {body.email}")


@app.command("setup-temporal")
def setup_temporal(wait: Annotated[float, typer.Option(help="Seconds to wait")] = 60) -> None:
    """Register the custom search attributes (idempotent; run at every start)."""
    from temporal_client import connect, ensure_search_attributes

    async def run() -> list[str]:
        settings = get_settings()
        client = await connect(settings, wait=wait)
        return await ensure_search_attributes(client, settings.temporal_namespace)

    added = asyncio.run(run())
    typer.echo(f"search attributes added: {', '.join(added) or 'none (all present)'}")


@app.command()
def mailsink(
    port: Annotated[int, typer.Option()] = 1025,
    directory: Annotated[Path, typer.Option("--dir")] = ROOT / "var" / "mail",
) -> None:
    """Run the local SMTP sink on 127.0.0.1, keeping each mail as .eml."""
    from devtools.mailsink import MailSink

    sink = MailSink(port=port, directory=directory, echo=True).start()
    typer.echo(f"mail sink on 127.0.0.1:{sink.port}, keeping mail in {directory}/")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.stop()


@app.command()
def journeys(
    stage: Annotated[
        str | None, typer.Option(help="EcoStage: a journey stage, or signup_<status>")
    ] = None,
    needs_operator: Annotated[
        bool | None, typer.Option("--needs-operator/--no-needs-operator", help="Flagged or not")
    ] = None,
    stuck: Annotated[bool, typer.Option("--stuck", help="Only what a stuck rule selects")] = False,
    queries: Annotated[
        bool, typer.Option("--queries", help="Print the Temporal UI queries (saved views) too")
    ] = False,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """Journeys and signups as operators see them in the Temporal UI (no personal data);
    the same set as GET /v1/operator/journeys, from the same query builder."""
    from api.services.operators import list_rows
    from domain.operators import STAGES
    from temporal_client import connect

    if stage is not None and stage not in STAGES:
        raise typer.BadParameter(f"one of {', '.join(STAGES)}", param_hint="--stage")

    async def run() -> None:
        settings = get_settings()
        client = await connect(settings)
        listing = await list_rows(
            client, settings, stage=stage, needs_operator=needs_operator, stuck=stuck, limit=limit
        )
        if queries:
            for query in listing.queries:
                typer.echo(f"query: {query}")
        for row in listing.rows:
            typer.echo(
                f"{row.workflow_id}  {row.run_status:<10} {row.stage or '-':<24} "
                f"since {row.stage_entered_at or '-'}  sent {row.reminder_count or 0}"
                + ("  NEEDS OPERATOR" if row.needs_operator else "")
                + (f"  stuck: {', '.join(row.reasons)}" if row.reasons else "")
                + (f"  next: {row.next_action}" if row.next_action else "")
            )

    asyncio.run(run())


@app.command()
def act(
    workflow_id: Annotated[str, typer.Argument(help="enrollment-… or signup-…")],
    action: Annotated[OperatorAction, typer.Argument(help="What to do")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit and the history)")],
    operator: Annotated[str, typer.Option(help="Who acts (recorded in the audit)")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Send the same key again to retry safely")
    ] = None,
) -> None:
    """An operator action, as POST /v1/operator/journeys/{id}/actions/{action} does it:
    the workflow's operator_action update, recorded in operator_audit (refusals too).
    The CLI runs with the store's and Temporal's own credentials: its caller is trusted
    as an operator and named by --operator."""
    from api.errors import ApiError
    from api.services.operators import Operator
    from api.services.operators import act as run_action
    from store.engine import make_engine
    from temporal_client import connect

    async def run() -> None:
        settings = get_settings()
        client = await connect(settings)
        engine = make_engine(settings.database_url)
        try:
            outcome, audit_id = await run_action(
                client,
                engine,
                settings,
                Operator(name=operator, role="operator"),
                workflow_id,
                action,
                reason,
                idempotency_key,
            )
        except ApiError as err:
            typer.echo(f"refused: {err.code.value} (recorded in the audit)", err=True)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
        typer.echo(
            f"{action.value}: {outcome.before_stage} -> {outcome.after_stage}  "
            f"{outcome.detail}  (audit #{audit_id})"
        )

    asyncio.run(run())


if __name__ == "__main__":
    app()
