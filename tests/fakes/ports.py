"""A free local port, for a test server to listen on or for a request that must find nothing listening."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on right now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
