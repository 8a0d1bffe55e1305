"""Command line for developers and operators: ``python cli.py --help``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from config import ROOT, get_settings
from domain.enrollment import Stage

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
    stage: Annotated[Stage | None, typer.Option(help="Only this stage")] = None,
    needs_operator: Annotated[
        bool | None, typer.Option("--needs-operator/--no-needs-operator", help="Flagged or not")
    ] = None,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """List journeys as operators see them in the Temporal UI (no personal data)."""
    from api.routes.system import list_journey_rows
    from temporal_client import connect

    async def run() -> None:
        settings = get_settings()
        client = await connect(settings)
        for row in await list_journey_rows(client, stage, needs_operator, limit):
            typer.echo(
                f"{row.workflow_id}  {row.run_status:<10} {row.stage or '-':<24} "
                f"since {row.stage_entered_at or '-'}  reminders {row.reminder_count or 0}"
                + ("  NEEDS OPERATOR" if row.needs_operator else "")
            )

    asyncio.run(run())


@app.command("terms-revised")
def terms_revised() -> None:
    """Tell running journeys about the member terms now configured (after a revision is
    deployed): waiting journeys are asked again, members get a notice. Idempotent."""
    from journey_terms import announce_terms
    from temporal_client import connect

    async def run() -> int:
        settings = get_settings()
        client = await connect(settings)
        return await announce_terms(client, settings.circle_terms())

    typer.echo(f"journeys signalled: {asyncio.run(run())}")


if __name__ == "__main__":
    app()
