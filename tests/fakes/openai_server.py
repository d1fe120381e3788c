"""A fake OpenAI-compatible chat server for tests and benchmarks: fixed latency, injected faults, call counts."""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAULTS = ("429", "500", "slow", "truncated")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connect at once
    daemon_threads = True


class FakeOpenAIServer:
    """Serves POST /v1/chat/completions on 127.0.0.1.

    Args:
        reply: the assistant text for a request body.
        latency_s: how long every answer takes.
        fault_rate: share of attempts (0..1) that fail, for attempts before `clean_after`.
        slow_s: how long a `slow` fault stalls (longer than the client's timeout).
        clean_after: from this attempt of a request on, it always succeeds.
    """

    def __init__(
        self,
        reply: Callable[[dict], str] = lambda body: "result = 1",
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        slow_s: float = 3.0,
        clean_after: int = 3,
    ) -> None:
        self.reply, self.latency_s, self.fault_rate = reply, latency_s, fault_rate
        self.slow_s, self.clean_after = slow_s, clean_after
        self.hits: Counter[str] = Counter()  # attempts per request (by messages)
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def calls(self) -> int:
        return sum(self.hits.values())

    def __enter__(self) -> "FakeOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault_for(self, request_id: str, attempt: int) -> str | None:
        """Deterministic: the same request fails the same way on the same attempt, run after run."""
        if attempt >= self.clean_after or self.fault_rate <= 0:
            return None
        roll = int(hashlib.sha256(f"{request_id}/{attempt}".encode()).hexdigest(), 16)
        if (roll % 10_000) / 10_000 >= self.fault_rate:
            return None
        return FAULTS[(roll // 10_000) % len(FAULTS)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connections, as with a real provider
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request_id = message_key(body["messages"])
                with fake._lock:
                    attempt = fake.hits[request_id]
                    fake.hits[request_id] += 1
                fault = fake.fault_for(request_id, attempt)
                if fault:
                    with fake._lock:
                        fake.faults[fault] += 1
                time.sleep(fake.slow_s if fault == "slow" else fake.latency_s)
                if fault in ("429", "500"):
                    return self._send(int(fault), {"error": {"message": f"injected {fault}", "type": "fault"}})
                payload = completion_json(fake.reply(body), body)
                if fault == "truncated":
                    payload = payload[: len(payload) // 2]
                self._send(200, payload)

            def _send(self, status: int, payload: dict | bytes) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("x-request-id", "req-fake")
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a `slow` fault): nothing to answer

        return Handler


def message_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def completion_json(text: str, body: dict) -> bytes:
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    return json.dumps({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                  "total_tokens": prompt_tokens + len(text.split())},
    }).encode()


def serve(latency_s: float) -> None:
    """Serve in this process until killed, printing the base URL first (benchmarks run the server in a process of
    its own, so its Python does not share the client's interpreter lock)."""
    with FakeOpenAIServer(latency_s=latency_s) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    import sys

    serve(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0)
