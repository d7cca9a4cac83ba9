"""A tiny OpenAI-compatible chat server on 127.0.0.1 for tests (standard library only).

    with StubServer(responder) as srv:      # srv.base_url = "http://127.0.0.1:PORT/v1"
        ...                                  # srv.requests: what it received (path, headers, body)

`responder(body, headers)` returns the assistant's text (a str), or a `Reply(status, payload)`
for anything else: an error status, a malformed body (payload bytes / str / any JSON).
`srv.queue` holds replies served first, before the responder (one per request).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int
    payload: Any  # bytes / str sent as is; anything else as JSON


def completion(text: str, model: str = "stub", finish_reason: str = "stop") -> dict[str, Any]:
    """A chat.completion object with one choice."""
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class StubServer:
    def __init__(self, responder: Callable[[dict, dict], Any] | None = None):
        self.responder = responder or (lambda body, headers: "ok")
        self.requests: list[dict[str, Any]] = []
        self.queue: list[Any] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode(errors="replace")}
                headers = {k.lower(): v for k, v in self.headers.items()}
                with stub._lock:
                    stub.requests.append({"path": self.path, "headers": headers, "body": body})
                    queued = stub.queue.pop(0) if stub.queue else None
                if not self.path.endswith("/chat/completions"):
                    out: Any = Reply(404, {"error": {"message": f"no route {self.path}"}})
                else:
                    out = queued if queued is not None else stub.responder(body, headers)
                if isinstance(out, str):
                    out = Reply(200, completion(out, body.get("model", "stub")))
                data = out.payload if isinstance(out.payload, bytes) else (
                    out.payload.encode() if isinstance(out.payload, str) else json.dumps(out.payload).encode())
                self.send_response(out.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def prompts(self) -> list[str]:
        """The last message's content of each request received."""
        return [r["body"]["messages"][-1]["content"] for r in self.requests]
