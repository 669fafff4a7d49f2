"""A live server for tests that need a real socket (a browser, a subprocess calling the API)."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from api.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def serving() -> AsyncIterator[str]:
    """The app on 127.0.0.1 in this event loop, sharing the test's database set-up (use it inside a
    fixture that depends on `backend`); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(manage_db=False), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
