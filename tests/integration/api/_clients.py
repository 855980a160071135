"""HTTP clients that come from a chosen client address, for the lockout tests: the
policy counts failures per (account, client address), so a test needs several.

In process: httpx's ``ASGITransport(client=(ip, port))`` sets the ASGI scope's client,
which is where the gateway reads the peer address. Over loopback: a real TCP connection
from a chosen source address (every 127.x.y.z is this machine on Linux)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class AddressedASGIClient(httpx.Client):
    """A sync client over an ASGI app whose requests come from ``ip``."""

    def __init__(self, app: Any, ip: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://gateway"
        )
        super().__init__(base_url="http://gateway")

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        return self._loop.run_until_complete(self._async.request(method, url, **kwargs))

    def close(self) -> None:
        self._loop.run_until_complete(self._async.aclose())
        self._loop.close()
        super().close()


def loopback_client(base_url: str, source_ip: str) -> httpx.Client:
    """A client of a live gateway whose TCP connections leave from ``source_ip``."""
    return httpx.Client(base_url=base_url, timeout=30.0, transport=httpx.HTTPTransport(local_address=source_ip))
