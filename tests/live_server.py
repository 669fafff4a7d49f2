"""A live server for tests that need a real socket (a browser, a subprocess calling the API)."""
from __future__ import annotations

import asyncio
import socket

import pytest_asyncio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest_asyncio.fixture
async def live_server(backend):
    """The app on 127.0.0.1 in this event loop (it shares the test's database set-up); yields its base URL."""
    import uvicorn

    from api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(manage_db=False), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
