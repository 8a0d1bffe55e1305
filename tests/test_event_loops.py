"""The processes' event loops: the worker runs on uvloop (``worker.run``), and uvicorn
serves the API on uvloop with the httptools parser (its ``auto`` choices, which take them
when installed: pyproject.toml); the worker freezes its startup heap before it polls.
README, Benchmarks: the CPU of a step in each process, and the worker's full collections."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

import worker


def test_the_worker_runs_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[type[asyncio.AbstractEventLoop], list[str]]] = []

    async def main(argv: list[str]) -> None:
        seen.append((type(asyncio.get_running_loop()), argv))

    monkeypatch.setattr(worker, "main", main)
    worker.run(["--only", "workflows"])
    assert seen == [(uvloop.Loop, ["--only", "workflows"])]


async def app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not served in this test")


def test_uvicorn_serves_on_uvloop_with_httptools() -> None:
    config = Config(app)  # what the Procfile, the Dockerfile and docker-compose leave
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_worker_freezes_its_startup_heap() -> None:
    try:
        frozen = worker.freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        cycle: list[object] = []  # garbage made while serving, after the start
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # is still collected: only the startup heap is frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
