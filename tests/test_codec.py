"""The payload codec: AES-GCM with the key ID in the payload's metadata."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload

from codec import KEY_ID, AesGcmCodec

OLD, NEW = bytes(32), bytes(range(32))


def payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_round_trip_hides_the_plaintext() -> None:
    codec = AesGcmCodec({"k1": NEW}, "k1")
    [sealed] = await codec.encode([payload(b'{"email":"taro@example.com"}')])
    assert b"taro@example.com" not in sealed.SerializeToString()
    assert sealed.metadata[KEY_ID] == b"k1"
    assert await codec.decode([sealed]) == [payload(b'{"email":"taro@example.com"}')]


async def test_rotation_keeps_old_payloads_readable() -> None:
    [old] = await AesGcmCodec({"k0": OLD}, "k0").encode([payload(b"old")])
    rotated = AesGcmCodec({"k0": OLD, "k1": NEW}, "k1")
    [new] = await rotated.encode([payload(b"new")])
    assert new.metadata[KEY_ID] == b"k1"
    assert [p.data for p in await rotated.decode([old, new])] == [b"old", b"new"]


async def test_unknown_key_and_tampering_fail_loudly() -> None:
    [sealed] = await AesGcmCodec({"k0": OLD}, "k0").encode([payload(b"x")])
    with pytest.raises(ValueError, match="unknown key"):
        await AesGcmCodec({"k1": NEW}, "k1").decode([sealed])
    tampered = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    with pytest.raises(InvalidTag):
        await AesGcmCodec({"k0": OLD}, "k0").decode([tampered])


async def test_unencrypted_payloads_pass_through() -> None:
    plain = payload(b"recorded before the codec")
    assert await AesGcmCodec({"k1": NEW}, "k1").decode([plain]) == [plain]


def test_keys_must_be_aes_256() -> None:
    with pytest.raises(ValueError):
        AesGcmCodec({"k1": b"short"}, "k1")
    with pytest.raises(ValueError):
        AesGcmCodec({"k1": NEW}, "k2")
