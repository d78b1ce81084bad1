"""Serving a fake's aiohttp app on 127.0.0.1 at a free port: in the test's loop, or a thread.

Async tests use `LocalServer` (`async with`); sync clients (the `openai` fine-tuning client,
`doctor`'s checks) need the app served from a thread with its own loop: `serve_in_thread`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Self

from aiohttp import web

__all__ = ["LocalServer", "serve_in_thread", "start_site"]

HOST = "127.0.0.1"


async def start_site(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 at a free port; the runner (clean it up) and the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    return runner, int(runner.addresses[0][1])


@contextmanager
def serve_in_thread(
    app: web.Application,
    *,
    name: str = "fake-server",
    on_stop: Callable[[], object] | None = None,
) -> Iterator[int]:
    """Serve `app` from a background thread with its own event loop; yields the port.

    `on_stop` runs on that loop before the server shuts down (to end hanging answers).
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    runner: web.AppRunner | None = None
    try:
        runner, port = asyncio.run_coroutine_threadsafe(start_site(app), loop).result(timeout=10)
        yield port
    finally:
        if on_stop is not None:
            loop.call_soon_threadsafe(on_stop)
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class LocalServer:
    """A fake served while `async with` lasts; subclasses give `routes()`."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`, while the server runs."""
        if self.port is None:
            name = type(self).__name__
            raise RuntimeError(f"{name} is not running; use `async with {name}()`")
        return f"http://{HOST}:{self.port}"

    def routes(self) -> list[web.RouteDef]:
        """The endpoints the fake speaks."""
        raise NotImplementedError

    def stopping(self) -> None:
        """Called as the server stops, before it waits for open requests: end hanging ones."""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.add_routes(self.routes())
        self._runner, self.port = await start_site(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stopping()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
