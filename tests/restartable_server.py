"""A Temporal dev server that a test can stop and start again, keeping its state.

``WorkflowEnvironment.start_local`` picks a new port each time and its client belongs to
that one server; an outage test needs the same address before and after (the API's and the
worker's client reconnect to it by themselves) and a ``--db-filename`` so the journeys
survive the restart. The ports come from a range reserved for these tests; the first free
one is kept for the server's whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter

from temporal_client import ensure_search_attributes

# gRPC, HTTP and metrics take three in a row. Picked at random among the free ones (two
# suites running at once must not pick the same block: "free" is only true until the
# server binds), and checked again after the start (see ``start``).
PORTS = range(20000, 29000, 3)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RestartableDevServer:
    def __init__(self, binary: Path, db_file: Path, converter: DataConverter) -> None:
        self._binary = binary
        self._db_file = db_file
        self._converter = converter
        self._process: asyncio.subprocess.Process | None = None
        self.port = self._pick_port()

    @staticmethod
    def _pick_port() -> int:
        candidates = list(PORTS)
        random.shuffle(candidates)
        return next(p for p in candidates if all(_free(p + i) for i in range(3)))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        for _ in range(5):
            if await self._start_once():
                break
            # Another process took the block between the check and the bind: another one.
            self.port = self._pick_port()
        else:
            raise RuntimeError("the dev server could not bind a free block of ports")
        client = await self.connect(wait=30)
        # Idempotent; the flag form is ignored for a namespace kept in the state file.
        await ensure_search_attributes(client, client.namespace)

    async def _start_once(self) -> bool:
        self._process = await asyncio.create_subprocess_exec(
            str(self._binary),
            "server",
            "start-dev",
            "--headless",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--http-port={self.port + 1}",
            f"--metrics-port={self.port + 2}",
            f"--db-filename={self._db_file}",
            "--log-level=error",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self.connect(wait=30)
        # Connected: to our own server only if it is still running (a server that lost
        # the port exits at once, and the address may answer for someone else's).
        await asyncio.sleep(0.5)
        if self._process.returncode is None:
            return True
        self._process = None
        return False

    async def connect(self, wait: float = 0.0) -> Client:
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            try:
                return await Client.connect(self.address, data_converter=self._converter)
            except RuntimeError:
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have exited already
                self._process.terminate()
            await asyncio.wait_for(self._process.wait(), timeout=30)
            self._process = None
