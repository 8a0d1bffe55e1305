"""Command line for developers and operators: ``python cli.py --help``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from config import ROOT, get_settings
from domain.operators import OperatorAction
from store.operators import Role

app = typer.Typer(no_args_is_help=True, help=__doc__)


@app.callback()
def _refuse_published_secrets() -> None:
    """Every command first checks the secrets (outside development: none published)."""
    from config import UnsafeSecrets

    try:
        get_settings().check_secrets("the CLI")
    except UnsafeSecrets as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


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

    sink = MailSink(port=port, directory=directory, echo=True, keep=False).start()
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
    The CLI runs with the store's and Temporal's own credentials; --operator must name an
    enabled operator with the operator role (recorded in the audit)."""
    from api.deps import OperatorIdentity
    from api.errors import ApiError
    from api.services.operators import act as run_action
    from store import operators as operators_store
    from store.engine import make_engine
    from store.operators import Role
    from temporal_client import connect

    async def run() -> None:
        settings = get_settings()
        client = await connect(settings)
        engine = make_engine(settings.database_url)
        # The CLI runs where the store is: the operator must exist, be enabled and hold the
        # operator role (cli.py operator add NAME --role operator).
        found = operators_store.by_name(engine, operator)
        if found is None or found.disabled or found.role != Role.OPERATOR:
            typer.echo(f"{operator}: not an enabled operator with the operator role", err=True)
            raise typer.Exit(2)
        identity = OperatorIdentity(found.name, found.role)
        try:
            outcome, audit_id = await run_action(
                client,
                engine,
                settings,
                identity,
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


@app.command()
def funnel(
    task_queue: Annotated[
        str | None, typer.Option(help="Only journeys on this task queue (default: all)")
    ] = None,
) -> None:
    """Households at each stage now, and converted (reached enrolled) in the last 7/30
    days, from Temporal's visibility counts."""
    from datetime import UTC, datetime

    from funnel import funnel as count_funnel
    from funnel import render
    from temporal_client import connect

    async def run() -> str:
        client = await connect(get_settings())
        return render(await count_funnel(client, datetime.now(UTC), task_queue))

    typer.echo(asyncio.run(run()))


operator_app = typer.Typer(no_args_is_help=True, help="Operator accounts (people, with roles).")
app.add_typer(operator_app, name="operator")


def _engine() -> Engine:
    from store.engine import make_engine

    return make_engine(get_settings().database_url)


@operator_app.command("add")
def operator_add(
    name: Annotated[str, typer.Argument(help="A person's login name (no e-mail needed)")],
    role: Annotated[Role, typer.Option(help="viewer: read and decrypt; operator: also act")] = (
        Role.VIEWER
    ),
    password: Annotated[
        bool, typer.Option("--password/--no-password", help="Ask for a password (twice)")
    ] = False,
) -> None:
    """Create an operator account. Give it a password (--password) and/or tokens."""
    from api.security import hash_password
    from store import operators

    chosen = role
    hashed = None
    if password:
        hashed = hash_password(typer.prompt("password", hide_input=True, confirmation_prompt=True))
    try:
        operators.add(_engine(), name, chosen, hashed)
    except operators.OperatorExists:
        typer.echo(f"operator {name} exists already", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"operator {name} added ({chosen.value})")


@operator_app.command("password")
def operator_password(name: str) -> None:
    """Set (or change) an operator's password."""
    from api.security import hash_password
    from store import operators

    hashed = hash_password(typer.prompt("password", hide_input=True, confirmation_prompt=True))
    operators.set_password(_engine(), name, hashed)
    typer.echo(f"password of {name} set")


@operator_app.command("token")
def operator_token(
    name: str, label: Annotated[str, typer.Option(help="What the token is for")] = ""
) -> None:
    """Issue a personal API token: printed once, only its hash is kept."""
    from store import operators

    try:
        typer.echo(operators.issue_token(_engine(), name, label))
    except operators.OperatorNotFound:
        typer.echo(f"no operator {name}", err=True)
        raise typer.Exit(1) from None


@operator_app.command("list")
def operator_list() -> None:
    """Every operator: role, enabled, password, live tokens."""
    from store import operators

    for op in operators.list_operators(_engine()):
        typer.echo(
            f"{op.name:<24} {op.role.value:<9} {'disabled' if op.disabled else 'enabled':<9} "
            f"password {'yes' if op.has_password else 'no ':<4} tokens {op.tokens}"
        )


@operator_app.command("disable")
def operator_disable(name: str) -> None:
    """Refuse every credential of this operator from now on (the audit keeps the name)."""
    from store import operators

    try:
        operators.disable(_engine(), name)
    except operators.OperatorNotFound:
        typer.echo(f"no operator {name}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"operator {name} disabled")


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


def main() -> None:
    """Run the command, then end the process without the interpreter's teardown. The
    Temporal client's core threads can outlive a short-lived process and abort it while
    Python finalizes ("PyGILState_Release: thread state … must be current when
    releasing", exit -6 after the command had done its work and printed it; seen in CI
    with ``journeys``; temporalio/sdk-python#300). The output is flushed and the exit
    code kept; nothing else is left to tear down (every command closes what it opens)."""
    code = 0
    try:
        app()
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            code = 1
        else:
            code = done.code or 0
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (``| head``)
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
