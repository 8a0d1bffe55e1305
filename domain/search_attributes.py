"""Custom search attributes operators filter on in the Temporal UI.

None carries personal data. SQL visibility allows 10 Keyword attributes and 3 of each other
type per namespace; we use one Keyword, one Datetime, one Int and one Bool. Both workflow
types publish all four (``domain/operators.py`` says what each means for a signup), so one
query lists journeys and signups alike.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STAGE = SearchAttributeKey.for_keyword("EcoStage")
STAGE_ENTERED_AT = SearchAttributeKey.for_datetime("EcoStageEnteredAt")
REMINDER_COUNT = SearchAttributeKey.for_int("EcoReminderCount")
NEEDS_OPERATOR = SearchAttributeKey.for_bool("EcoNeedsOperator")

ALL = (STAGE, STAGE_ENTERED_AT, REMINDER_COUNT, NEEDS_OPERATOR)
