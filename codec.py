"""Encryption of workflow payloads (AES-256-GCM), so the Temporal server never holds
personal data in plaintext.

Each encrypted payload carries the ID of the key that sealed it in its metadata, so keys
can be rotated: new payloads use the current key, old ones still open with theirs.
Payloads that are not encrypted (recorded before the codec) pass through unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class AesGcmCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise ValueError(f"no key with ID {current_key_id!r}")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"key {key_id!r} must be 32 bytes (AES-256)")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current_key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        sealed = []
        for payload in payloads:
            nonce = os.urandom(12)
            data = cipher.encrypt(nonce, payload.SerializeToString(), self._current.encode())
            sealed.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._current.encode()},
                    data=nonce + data,
                )
            )
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)
                continue
            key_id = payload.metadata[KEY_ID].decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise ValueError(f"payload sealed with unknown key {key_id!r}")
            plain = cipher.decrypt(payload.data[:12], payload.data[12:], key_id.encode())
            opened.append(Payload.FromString(plain))
        return opened


def encrypted_converter(keys: Mapping[str, bytes], current_key_id: str) -> DataConverter:
    """The pydantic converter with encrypted payloads and encoded failure messages.

    Failure messages and stack traces are stored in plaintext by default; with
    encoded attributes they travel in an encrypted payload instead.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec(keys, current_key_id),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
