"""Telling running journeys about a revision of the member terms (``cli.py terms-revised``).

Consent does not need this: the API sends the current terms with every consent, so a
journey started before a revision can consent to the new version on its own. This is for
the mails: a journey waiting for consent is asked again, a member gets a notice.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.terms import TermsDocument
from workflows.enrollment import EnrollmentWorkflow

RUNNING_JOURNEYS = "WorkflowType = 'EnrollmentWorkflow' AND ExecutionStatus = 'Running'"


async def announce_terms(client: Client, terms: TermsDocument) -> int:
    """Signal every running journey; each ignores a version it already has. Returns how
    many were signalled (safe to run again: the signal is idempotent by version)."""
    signalled = 0
    async for wf in client.list_workflows(RUNNING_JOURNEYS):
        try:
            await client.get_workflow_handle(wf.id).signal(EnrollmentWorkflow.terms_revised, terms)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            continue  # it ended meanwhile
        signalled += 1
    return signalled
