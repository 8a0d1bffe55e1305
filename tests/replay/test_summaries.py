"""Timer and activity summaries (user metadata) are sealed by the payload codec, like any
payload, and say what the workflow waits for without personal data."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.api.common.v1 import Payload

from codec import ENCODING
from tests.conftest import CONVERTER

HERE = Path(__file__).parent / "histories"


async def summaries(name: str) -> list[str]:
    events = json.loads((HERE / f"{name}.json").read_text())["events"]
    sealed = []
    for event in events:
        summary = event.get("userMetadata", {}).get("summary")
        if summary:
            payload = Payload()
            from google.protobuf.json_format import ParseDict

            ParseDict(summary, payload)
            assert payload.metadata["encoding"] == ENCODING  # encrypted, not plaintext
            sealed.append(payload)
    assert CONVERTER.payload_codec is not None
    opened = await CONVERTER.payload_codec.decode(sealed)
    return [CONVERTER.payload_converter.from_payload(p, str) for p in opened]


async def test_signup_summaries_are_encrypted_and_say_what_is_awaited() -> None:
    texts = await summaries("signup_operator_actions")
    assert any(t.startswith("link expires at ") for t in texts)
    assert "issue and mail link 2" in texts
    assert "operator: release the address" in texts
    assert "mail: signup_cancelled" in texts
    assert not any("@" in t for t in texts)


async def test_journey_summaries_are_encrypted_and_say_what_is_awaited() -> None:
    texts = await summaries("enrollment_operator_actions")
    assert "check eligibility" in texts
    assert any(t.startswith("reminder 1 of 2 at ") for t in texts)
    assert "mail: journey_cancelled" in texts
    assert not any("@" in t for t in texts)
