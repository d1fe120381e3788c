"""An HTTP proxy on 127.0.0.1 in front of a real server that injects faults: a plan says, for each attempt of each
request, whether it is passed on as it is or answered with a fault instead.

Faults: `429` (with `Retry-After`, `429:<seconds>`), `500`, `503`, `400`, `404` (each with an error body in the
shape of the protocol the path names: Anthropic's for `/messages`, OpenAI's otherwise), `reset` (the connection is
reset: a TCP RST, nothing answered), `stall` (nothing answered until the client gives up, past its timeout) and
`stop` (the server goes away: this connection is reset and nothing listens on the port any more).
Every request is logged with its path, attempt number, fault and the monotonic times it arrived and was answered.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

FAULTS = ("429", "500", "503", "400", "404", "reset", "stall", "stop")
Plan = Callable[[str, dict, int], "str | None"]
"""(path, request body, attempt of this request from 0) -> a fault, or None to pass the request on."""


@dataclass
class Attempt:
    path: str
    key: str
    """The request's identity: a hash of its body's messages (or input), the same on every attempt."""
    attempt: int
    fault: str | None
    arrived: float
    answered: float | None = None
    status: int | None = None
    """The status the client was answered with (None: reset or stalled)."""
    reply: dict | None = field(default=None, repr=False)
    """The real server's reply, when it was passed on and was JSON."""


def in_turn(*faults: str | None) -> Plan:
    """The i-th request to arrive, whatever it is, gets `faults[i]`; later ones are passed on."""
    counter = iter(range(1 << 30))

    def plan(path: str, body: dict, attempt: int) -> str | None:
        i = next(counter)
        return faults[i] if i < len(faults) else None

    return plan


def per_attempt(*faults: str | None) -> Plan:
    """Every request gets `faults[attempt]` on its attempt number `attempt`; later attempts are passed on."""
    return lambda path, body, attempt: faults[attempt] if attempt < len(faults) else None


class FaultProxy:
    """Serves in a thread of its own until closed; `base_url` is the upstream's with the proxy's host and port (`port`:
    a free one when 0)."""

    def __init__(self, upstream: str, plan: Plan = lambda path, body, attempt: None, port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port, self.upstream_path = parts.hostname, parts.port, parts.path
        self.plan = plan
        self.log: list[Attempt] = []
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.upstream_path}"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def of(self, key: str) -> list[Attempt]:
        """The attempts of one request (`request_key` of its body)."""
        with self._lock:
            return [a for a in self.log if a.key == key]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._open: set[asyncio.StreamWriter] = set()
        server = self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for writer in list(self._open):  # a stalled connection would hold the server open
            writer.transport.abort()
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection, answered with `Connection: close` (clients open another for the next)."""
        self._open.add(writer)
        try:
            await self._answer(reader, writer)
        finally:
            self._open.discard(writer)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        path = head.split(b" ", 2)[1].decode()
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        key = request_key(request)
        with self._lock:
            attempt = self.hits[key]
            self.hits[key] += 1
        fault = self.plan(path, request, attempt)
        entry = Attempt(path=path, key=key, attempt=attempt, fault=fault, arrived=time.monotonic())
        with self._lock:
            self.log.append(entry)
        try:
            if fault == "stop":
                self._server.close()  # stops listening; the connections open stay until answered
            if fault in ("reset", "stop"):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if fault == "stall":
                await reader.read()  # until the client gives up and closes its end
                writer.close()
                return
            if fault is not None:
                status, _, seconds = fault.partition(":")
                headers = {"Retry-After": seconds} if seconds else {}
                response = _response(int(status), error_body(int(status), path), headers)
            else:
                response = await self._forward(head, body)
                entry.reply = _json_of(response)
            entry.status = int(response.split(b" ", 2)[1])
            writer.write(response)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            entry.answered = time.monotonic()
            writer.close()

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        """The request as it came (but for `Connection: close`), and the upstream's whole reply."""
        lines = [line for line in head.split(b"\r\n")[:-2] if not line.lower().startswith(b"connection:")]
        request = b"\r\n".join([*lines, b"Connection: close", b"", b""]) + body
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            writer.write(request)
            await writer.drain()
            return await reader.read()  # the upstream closes after its reply
        finally:
            writer.close()


def request_key(body: dict) -> str:
    """A request's identity across its attempts: what it asks (messages, or the Responses API's input)."""
    asked = body.get("messages", body.get("input", body))
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


def error_body(status: int, path: str) -> dict:
    """An error in the documented shape of the protocol `path` belongs to."""
    message = f"injected {status}"
    if path.rstrip("/").endswith("/messages"):
        kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 500: "api_error",
                 503: "overloaded_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}
    kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_exceeded"}
    return {"error": {"message": message, "type": kinds.get(status, "server_error"), "param": None, "code": None}}


def _response(status: int, payload: dict, headers: dict[str, str]) -> bytes:
    data = json.dumps(payload).encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/json",
             f"Content-Length: {len(data)}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


_REASONS = {400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _json_of(response: bytes) -> dict | None:
    _, _, payload = response.partition(b"\r\n\r\n")
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
