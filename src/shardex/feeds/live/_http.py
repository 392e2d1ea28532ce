"""A minimal asyncio HTTP/1.1 GET client for REST depth snapshots (no extra dependency).

It speaks just what a depth request needs: one GET with ``Connection: close``,
a ``Content-Length``, chunked or read-to-close body, TLS for ``https``. The
body size is capped so a misbehaving server cannot exhaust memory.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from shardex.errors import ShardexError

__all__ = ["http_get", "HttpError", "MAX_BODY"]

#: Largest body accepted (a 5,000-level Binance snapshot is ~250 KB).
MAX_BODY = 32 << 20


class HttpError(ShardexError, OSError):
    """A REST request failed (connect, timeout, bad status or a malformed response); the message names the URL."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def http_get(url: str, timeout: float = 10.0) -> bytes:
    """GET ``url`` and return the body of a 200 response; raises :class:`HttpError` otherwise."""
    try:
        return await asyncio.wait_for(_get(url), timeout)
    except asyncio.TimeoutError:
        raise HttpError(f"GET {url}: no complete response within {timeout} s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        if isinstance(exc, HttpError):
            raise
        raise HttpError(f"GET {url}: {type(exc).__name__}: {exc}") from None


async def _get(url: str) -> bytes:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise HttpError(f"GET {url}: only http:// and https:// URLs with a host are supported")
    port = u.port or (443 if u.scheme == "https" else 80)
    ctx = ssl.create_default_context() if u.scheme == "https" else None
    reader, writer = await asyncio.open_connection(u.hostname, port, ssl=ctx)
    try:
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: application/json\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"GET {url}: bad status line {lines[0]!r}")
        status = int(parts[1])
        headers = {}
        for h in lines[1:]:
            k, sep, v = h.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            if n > MAX_BODY:
                raise HttpError(f"GET {url}: body of {n} bytes is over the {MAX_BODY} cap")
            body = await reader.readexactly(n)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks, total = [], 0
            for _ in range(1 << 20):  # bounded: one turn per chunk
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    break
                total += size
                if total > MAX_BODY:
                    raise HttpError(f"GET {url}: chunked body over the {MAX_BODY} cap")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await reader.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise HttpError(f"GET {url}: body over the {MAX_BODY} cap")
        if status != 200:
            raise HttpError(f"GET {url}: HTTP {status}: {body[:200]!r}", status)
        return body
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
