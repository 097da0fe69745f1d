"""A webhook on 127.0.0.1 for the tests: records each POST, answers as a test tells it to."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Post:
    path: str
    content_type: str
    idempotency_key: str | None
    body: dict
    status: int


class WebhookReceiver:
    """``fail(path, n)``: the next n POSTs to path get 500; ``delay(path, s)``: answered s late."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self._failures: dict[str, int] = {}
        self._down: set[str] = set()
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(receiver._delays.get(self.path, 0))
                with receiver._lock:
                    status = 204
                    if self.path in receiver._down:
                        status = 503
                    elif receiver._failures.get(self.path, 0) > 0:
                        receiver._failures[self.path] -= 1
                        status = 500
                    receiver.posts.append(
                        Post(
                            self.path,
                            self.headers["Content-Type"],
                            self.headers["Idempotency-Key"],
                            body,
                            status,
                        )
                    )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def clear(self) -> None:
        with self._lock:
            self.posts.clear()

    def fail(self, path: str, times: int) -> None:
        self._failures[path] = times

    def down(self, path: str, is_down: bool = True) -> None:
        (self._down.add if is_down else self._down.discard)(path)

    def delay(self, path: str, seconds: float) -> None:
        self._delays[path] = seconds

    def to(self, path: str) -> list[Post]:
        with self._lock:
            return [post for post in self.posts if post.path == path]

    def of(self, transaction_id: int) -> list[Post]:
        with self._lock:
            return [post for post in self.posts if post.body.get("transaction_id") == transaction_id]
