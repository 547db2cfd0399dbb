"""Fake OpenAI and Anthropic HTTP servers on 127.0.0.1 for offline tests, examples and benchmarks.

Standard library only (pytest fixtures are defined when pytest is importable).

    with FakeOpenAI(usage={"prompt": 120, "completion": 30, "cached": 100}) as srv:
        litellm.completion(model="openai/gpt-4o-mini", api_base=srv.base_url + "/v1",
                           api_key="sk-fake", messages=[{"role": "user", "content": "hi"}])
        srv.requests[0].body["model"]  # "gpt-4o-mini"

    with FakeAnthropic(usage={"input": 10, "output": 5, "cache_read": 200}) as srv:
        litellm.completion(model="anthropic/claude-sonnet-4-5", api_base=srv.base_url,
                           api_key="sk-fake", messages=[...])

LiteLLM posts Anthropic calls to ``api_base + "/v1/messages"`` (unless api_base already ends with
``/v1/messages``); the server answers both ``/v1/messages`` and ``/messages``.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import importlib.util
import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, TypeVar

__all__ = [
    "AnthropicUsage",
    "ExternalNetworkError",
    "FakeAnthropic",
    "FakeCohere",
    "FakeOpenAI",
    "FakeServer",
    "OpenAIUsage",
    "RecordedRequest",
    "StrictOpenAI",
    "block_external_network",
]

JSON = dict[str, Any]

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


@dataclass(frozen=True)
class OpenAIUsage:
    """Token counts an OpenAI-style server reports (prompt includes cached tokens)."""

    prompt: int = 10
    completion: int = 5
    cached: int = 0
    reasoning: int = 0

    @classmethod
    def coerce(cls, value: OpenAIUsage | Mapping[str, int] | None) -> OpenAIUsage:
        """Build from an instance, a mapping of field names, or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, OpenAIUsage):
            return value
        return cls(**dict(value))

    def chat_block(self) -> JSON:
        """The ``usage`` object of a chat completion."""
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def embedding_block(self) -> JSON:
        """The ``usage`` object of an embeddings response."""
        return {"prompt_tokens": self.prompt, "total_tokens": self.prompt}


@dataclass(frozen=True)
class AnthropicUsage:
    """Token counts an Anthropic-style server reports (input excludes cache reads and writes)."""

    input: int = 10
    output: int = 5
    cache_read: int = 0
    cache_creation: int = 0

    @classmethod
    def coerce(cls, value: AnthropicUsage | Mapping[str, int] | None) -> AnthropicUsage:
        """Build from an instance, a mapping of field names, or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, AnthropicUsage):
            return value
        return cls(**dict(value))

    def block(self, output: int | None = None) -> JSON:
        """The ``usage`` object of a message, with ``output`` overriding output_tokens."""
        return {
            "input_tokens": self.input,
            "output_tokens": self.output if output is None else output,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation_input_tokens": self.cache_creation,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    client_host: str
    received_at: float = 0.0

    @property
    def json(self) -> JSON:
        """The parsed JSON body as a dict (empty when the body was not a JSON object)."""
        return self.body if isinstance(self.body, dict) else {}


@dataclass
class _Failure:
    status: int
    body: JSON
    headers: Mapping[str, str]


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    break_after: list[int] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        """Answer GET requests (model listings and the like) with 404."""
        self._record(None)
        self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        """Record the request, apply scripted failures, then route it."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type") or ""
        body: Any
        if content_type.startswith("multipart/form-data"):
            body = _parse_multipart(content_type, raw)
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self._record(body)
        state = self.server.state
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if failure is not None:
            self._send_json(failure.status, failure.body, failure.headers)
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        refusal = self.server.owner.refuse(path, body)
        if refusal is not None:
            self._send_json(refusal.status, refusal.body, refusal.headers)
            return
        route = self.server.owner.route(path)
        if route is None:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        request = body if isinstance(body, dict) else {}
        if request.get("stream") is True:
            with state.lock:
                limit = state.break_after.pop(0) if state.break_after else None
            self._send_sse(route.stream(request), limit)
        else:
            self._send_json(200, route.respond(request))

    def _record(self, body: Any) -> None:
        entry = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_host=self.client_address[0],
            received_at=time.monotonic(),
        )
        with self.server.state.lock:
            self.server.state.requests.append(entry)

    def _send_json(
        self, status: int, payload: JSON, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_sse(self, events: Iterator[str], limit: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for sent, event in enumerate(events):
            if limit is not None and sent >= limit:
                # Close without the terminating chunk: the client sees a truncated stream.
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: FakeServer) -> None:
        self.owner = owner
        self.state = owner._state
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (keep-alive resets, aborted streams); report the rest."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


_S = TypeVar("_S", bound="FakeServer")


@dataclass(frozen=True)
class _Route:
    respond: Callable[[JSON], JSON]
    stream: Callable[[JSON], Iterator[str]]


class FakeServer:
    """Base class: a threaded HTTP server on 127.0.0.1 with recorded requests and failures."""

    _ids: ClassVar[Iterator[int]] = itertools.count(1)

    def __init__(self) -> None:
        """Create the server; it listens once started (``start()`` or ``with``)."""
        self._state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def route(self, path: str) -> _Route | None:
        """The handler pair for a POST path, or None for 404."""
        raise NotImplementedError

    def refuse(self, path: str, body: Any) -> _Failure | None:
        """An error to answer a request with instead of routing it (None: route it)."""
        return None

    def start(self: _S) -> _S:
        """Start listening on an ephemeral 127.0.0.1 port in a daemon thread."""
        if self._server is None:
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server and join its thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self: _S) -> _S:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, no /v1)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def clear(self) -> None:
        """Forget recorded requests and pending scripted failures."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.failures.clear()
            self._state.break_after.clear()

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        body: JSON | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` POSTs with ``status`` and an error JSON body."""
        payload = body if body is not None else self.error_body(status)
        extra: dict[str, str] = {}
        if status == 429:
            # Let the OpenAI/Anthropic SDKs retry immediately instead of sleeping.
            extra["retry-after-ms"] = "1"
            extra["retry-after"] = "0"
        extra.update(headers or {})
        with self._state.lock:
            self._state.failures.extend(_Failure(status, payload, extra) for _ in range(count))

    def break_next_stream(self, after_events: int) -> None:
        """Close the connection of the next streaming response after ``after_events`` events."""
        with self._state.lock:
            self._state.break_after.append(after_events)

    def error_body(self, status: int) -> JSON:
        """The provider's error JSON for an HTTP status."""
        raise NotImplementedError

    @classmethod
    def _next_id(cls) -> int:
        return next(cls._ids)


def _sse(payload: JSON, event: str | None = None) -> str:
    prefix = f"event: {event}\n" if event is not None else ""
    return f"{prefix}data: {json.dumps(payload)}\n\n"


def _parse_multipart(content_type: str, raw: bytes) -> JSON:
    """Form fields of a multipart body: text fields as str, files as {filename, size}."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: JSON = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = {"filename": filename, "size": len(payload)}
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def _split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def _embedding_inputs(request: JSON) -> Sequence[object]:
    raw = request.get("input")
    return raw if isinstance(raw, list) else [raw]


class FakeOpenAI(FakeServer):
    """OpenAI wire format: /v1/chat/completions, /v1/embeddings and /v1/completions."""

    def __init__(
        self,
        usage: OpenAIUsage | Mapping[str, int] | None = None,
        content: str = "Hello from the fake provider",
        model: str | None = None,
        embedding_dim: int = 3,
        audio_seconds: float = 12.5,
    ) -> None:
        """Configure the usage, reply text, answered model (default: the requested one).

        ``audio_seconds`` is the ``duration`` a transcription reports (verbose_json).
        """
        super().__init__()
        self.usage = OpenAIUsage.coerce(usage)
        self.content = content
        self.model = model
        self.embedding_dim = embedding_dim
        self.audio_seconds = audio_seconds

    def route(self, path: str) -> _Route | None:
        """Map the OpenAI paths, with or without the /v1 prefix."""
        path = path.removeprefix("/v1")
        if path == "/chat/completions":
            return _Route(self._chat, self._chat_stream)
        if path == "/embeddings":
            return _Route(self._embeddings, self._no_stream)
        if path == "/completions":
            return _Route(self._text, self._text_stream)
        if path == "/audio/transcriptions":
            return _Route(self._transcription, self._no_stream)
        if path == "/images/generations":
            return _Route(self._image, self._no_stream)
        if path == "/responses":
            return _Route(self._response, lambda request: _responses_stream(self, request))
        return None

    def error_body(self, status: int) -> JSON:
        """OpenAI-style error object."""
        kind = {429: "rate_limit_exceeded", 400: "invalid_request_error"}.get(
            status, "server_error"
        )
        return {
            "error": {"message": f"fake error {status}", "type": kind, "param": None, "code": kind}
        }

    def _model(self, request: JSON) -> str:
        return self.model or str(request.get("model") or "gpt-4o-mini")

    def _chat(self, request: JSON) -> JSON:
        return {
            "id": f"chatcmpl-fake{self._next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self._model(request),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage.chat_block(),
        }

    def _chat_stream(self, request: JSON) -> Iterator[str]:
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        base: JSON = {
            "id": f"chatcmpl-fake{self._next_id()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self._model(request),
            "system_fingerprint": "fp_fake",
        }
        extra: JSON = {"usage": None} if include_usage else {}
        first = {"role": "assistant", "content": "", "refusal": None}
        yield _sse({**base, "choices": [_delta(first, None)], **extra})
        for piece in _split_words(self.content):
            yield _sse({**base, "choices": [_delta({"content": piece}, None)], **extra})
        yield _sse({**base, "choices": [_delta({}, "stop")], **extra})
        if include_usage:
            yield _sse({**base, "choices": [], "usage": self.usage.chat_block()})
        yield "data: [DONE]\n\n"

    def _embeddings(self, request: JSON) -> JSON:
        inputs = _embedding_inputs(request)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1] * self.embedding_dim}
                for i in range(len(inputs))
            ],
            "model": self._model(request),
            "usage": self.usage.embedding_block(),
        }

    def _no_stream(self, request: JSON) -> Iterator[str]:
        yield _sse(self._embeddings(request))
        yield "data: [DONE]\n\n"

    def _transcription(self, request: JSON) -> JSON:
        # A multipart request: ``request`` holds its form fields (file as {filename, size}).
        if request.get("response_format") in ("text", None):
            return {"text": self.content}
        return {
            "task": "transcribe",
            "language": "english",
            "duration": self.audio_seconds,
            "text": self.content,
            "segments": [],
        }

    def _response(self, request: JSON) -> JSON:
        # Responses API: input/output token naming, cached and reasoning in *_details.
        return {
            "id": f"resp_fake{self._next_id()}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": self._model(request),
            "output": [
                {
                    "type": "message",
                    "id": f"msg_fake{self._next_id()}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": self.content, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": self.usage.prompt,
                "input_tokens_details": {"cached_tokens": self.usage.cached},
                "output_tokens": self.usage.completion,
                "output_tokens_details": {"reasoning_tokens": self.usage.reasoning},
                "total_tokens": self.usage.prompt + self.usage.completion,
            },
        }

    def _image(self, request: JSON) -> JSON:
        # gpt-image-* style: token usage (text prompt tokens in, image tokens out).
        n = int(request.get("n") or 1)
        return {
            "created": int(time.time()),
            "data": [
                {"url": f"https://images.invalid/fake{i}.png", "revised_prompt": None}
                for i in range(n)
            ],
            "usage": {
                "input_tokens": self.usage.prompt,
                "output_tokens": self.usage.completion,
                "total_tokens": self.usage.prompt + self.usage.completion,
                "input_tokens_details": {"text_tokens": self.usage.prompt, "image_tokens": 0},
            },
        }

    def _text(self, request: JSON) -> JSON:
        usage = self.usage.chat_block()
        return {
            "id": f"cmpl-fake{self._next_id()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self._model(request),
            "choices": [
                {"text": self.content, "index": 0, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": usage,
        }

    def _text_stream(self, request: JSON) -> Iterator[str]:
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        base: JSON = {
            "id": f"cmpl-fake{self._next_id()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self._model(request),
        }
        for piece in _split_words(self.content):
            choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": None}
            yield _sse({**base, "choices": [choice]})
        yield _sse({**base, "choices": [{"text": "", "index": 0, "finish_reason": "stop"}]})
        if include_usage:
            yield _sse({**base, "choices": [], "usage": self.usage.chat_block()})
        yield "data: [DONE]\n\n"


def _delta(delta: JSON, finish_reason: str | None) -> JSON:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


class FakeAnthropic(FakeServer):
    """Anthropic Messages wire format: POST /v1/messages (JSON or SSE)."""

    def __init__(
        self,
        usage: AnthropicUsage | Mapping[str, int] | None = None,
        content: str = "Hello from the fake provider",
        model: str | None = None,
    ) -> None:
        """Configure the usage, reply text, answered model (default: the requested one)."""
        super().__init__()
        self.usage = AnthropicUsage.coerce(usage)
        self.content = content
        self.model = model

    def route(self, path: str) -> _Route | None:
        """Map /v1/messages (and /messages)."""
        if path.removeprefix("/v1") == "/messages":
            return _Route(self._message, self._message_stream)
        return None

    def error_body(self, status: int) -> JSON:
        """Anthropic-style error object."""
        kind = {429: "rate_limit_error", 529: "overloaded_error", 400: "invalid_request_error"}
        return {
            "type": "error",
            "error": {"type": kind.get(status, "api_error"), "message": "fake"},
        }

    def _model(self, request: JSON) -> str:
        return self.model or str(request.get("model") or "claude-sonnet-4-5")

    def _message(self, request: JSON) -> JSON:
        return {
            "id": f"msg_fake{self._next_id()}",
            "type": "message",
            "role": "assistant",
            "model": self._model(request),
            "content": [{"type": "text", "text": self.content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": self.usage.block(),
        }

    def _message_stream(self, request: JSON) -> Iterator[str]:
        message: JSON = {
            "id": f"msg_fake{self._next_id()}",
            "type": "message",
            "role": "assistant",
            "model": self._model(request),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self.usage.block(output=1),
        }
        yield _sse({"type": "message_start", "message": message}, "message_start")
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        yield _sse(block, "content_block_start")
        yield _sse({"type": "ping"}, "ping")
        for piece in _split_words(self.content):
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            yield _sse(delta, "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": self.usage.output},
        }
        yield _sse(final, "message_delta")
        yield _sse({"type": "message_stop"}, "message_stop")


class FakeCohere(FakeServer):
    """Cohere rerank wire format: POST /v1/rerank and /v2/rerank."""

    def __init__(self, search_units: int = 1, relevance: Sequence[float] = (0.9, 0.1)) -> None:
        """Configure the billed search units and the scores given to documents in order."""
        super().__init__()
        self.search_units = search_units
        self.relevance = tuple(relevance)

    def route(self, path: str) -> _Route | None:
        """Map /v1/rerank and /v2/rerank (and /rerank)."""
        if path.removeprefix("/v1").removeprefix("/v2") == "/rerank":
            return _Route(self._rerank, self._no_stream)
        return None

    def error_body(self, status: int) -> JSON:
        """Cohere-style error object."""
        return {"message": f"fake error {status}"}

    def _rerank(self, request: JSON) -> JSON:
        documents = request.get("documents") or []
        scores = [
            self.relevance[i] if i < len(self.relevance) else 0.0 for i in range(len(documents))
        ]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])
        top_n = request.get("top_n")
        if isinstance(top_n, int):
            order = order[:top_n]
        return {
            "id": f"rerank-fake{self._next_id()}",
            "results": [{"index": i, "relevance_score": scores[i]} for i in order],
            "meta": {
                "api_version": {"version": "1"},
                "billed_units": {"search_units": self.search_units},
            },
        }

    def _no_stream(self, request: JSON) -> Iterator[str]:
        yield _sse(self._rerank(request))


# -- a server that sends no usage -----------------------------------------------------------

#: What `NoUsageOpenAI` answers with in the ``bare`` fixture (LiteLLM counts it as 4 tokens).
NO_USAGE_CONTENT = "one two three four"


class NoUsageOpenAI(FakeOpenAI):
    """An OpenAI-compatible server that sends no ``usage``, streamed or not (no usage
    chunk even when ``stream_options.include_usage`` asks for one).

    LiteLLM then reports 0 tokens and $0 (or, for some kinds, its own count).
    """

    def _chat(self, request: Any) -> Any:
        return {k: v for k, v in super()._chat(request).items() if k != "usage"}

    def _text(self, request: Any) -> Any:
        return {k: v for k, v in super()._text(request).items() if k != "usage"}

    def _embeddings(self, request: Any) -> Any:
        return {k: v for k, v in super()._embeddings(request).items() if k != "usage"}

    def _response(self, request: Any) -> Any:
        return {k: v for k, v in super()._response(request).items() if k != "usage"}

    def _chat_stream(self, request: Any) -> Iterator[str]:
        return _without_usage(super()._chat_stream(request))

    def _text_stream(self, request: Any) -> Iterator[str]:
        return _without_usage(super()._text_stream(request))


class NullUsageOpenAI(NoUsageOpenAI):
    """As `NoUsageOpenAI`, but a Responses API answer says ``"usage": null`` (in the
    streamed ``response.completed`` event too) where `NoUsageOpenAI` leaves the field out."""

    def _response(self, request: Any) -> Any:
        return {**super()._response(request), "usage": None}


def _without_usage(events: Iterator[str]) -> Iterator[str]:
    """A stream's SSE events without its usage: the usage chunk left out (asked for or not)."""
    for event in events:
        body = event.removeprefix("data: ").strip()
        if body.startswith("{") and json.loads(body).get("usage") is not None:
            continue
        yield event


# -- strict OpenAI-compatible servers ------------------------------------------------------


class StrictOpenAI(FakeOpenAI):
    """FakeOpenAI that validates chat requests strictly, as some OpenAI-compatible servers do.

    A chat completion body with a field outside ``accepted`` is answered with HTTP ``status``
    (400 by default) naming the field, in ``message`` (``{field}`` is replaced by its name), the
    way strict-validation servers and gateways reject, e.g., ``stream_options``.
    """

    CHAT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "model", "messages", "stream", "temperature", "top_p", "n", "stop", "max_tokens",
            "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias",
            "logprobs", "top_logprobs", "user", "seed", "tools", "tool_choice",
            "parallel_tool_calls", "response_format",
        }
    )  # fmt: skip

    def __init__(
        self,
        *args: Any,
        accepted: frozenset[str] | None = None,
        status: int = 400,
        message: str = "Unrecognized request argument supplied: {field}",
        **kwargs: Any,
    ) -> None:
        """``accepted``: the chat fields taken (default CHAT_FIELDS, no stream_options)."""
        super().__init__(*args, **kwargs)
        self.accepted = self.CHAT_FIELDS if accepted is None else accepted
        self.status = status
        self.message = message

    def refuse(self, path: str, body: Any) -> _Failure | None:
        """Reject a chat completion naming a field outside ``accepted``."""
        if path.removeprefix("/v1") != "/chat/completions" or not isinstance(body, dict):
            return None
        unknown = sorted(set(body) - self.accepted)
        if not unknown:
            return None
        error = {
            "message": self.message.format(field=unknown[0]),
            "type": "invalid_request_error",
            "param": unknown[0],
            "code": None,
        }
        return _Failure(self.status, {"error": error}, {})


class ExternalNetworkError(RuntimeError):
    """Raised when code under test tries to reach a host other than loopback."""


def _host_of(address: object) -> str | None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return None


@contextlib.contextmanager
def serving_offline(server: _S) -> Iterator[_S]:
    """``server`` cleared, for one test in which any host but loopback fails the test."""
    server.clear()
    with block_external_network() as attempted:
        yield server
    assert attempted == []


@contextlib.contextmanager
def block_external_network() -> Iterator[list[str]]:
    """Fail any DNS lookup or socket connect to a non-loopback host; yield the hosts attempted."""
    attempted: list[str] = []
    sock_cls: Any = socket.socket
    real_getaddrinfo = socket.getaddrinfo
    real_connect = sock_cls.connect
    real_connect_ex = sock_cls.connect_ex

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and str(name) not in _LOOPBACK_HOSTS:
            attempted.append(str(name))
            raise ExternalNetworkError(f"blocked DNS lookup of {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: object) -> None:
        host = _host_of(address)
        if host is not None and host not in _LOOPBACK_HOSTS:
            attempted.append(host)
            raise ExternalNetworkError(f"blocked connect to {address!r}")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return int(real_connect_ex(self, address))

    socket.getaddrinfo = guarded_getaddrinfo
    sock_cls.connect = guarded_connect
    sock_cls.connect_ex = guarded_connect_ex
    try:
        yield attempted
    finally:
        socket.getaddrinfo = real_getaddrinfo
        sock_cls.connect = real_connect
        sock_cls.connect_ex = real_connect_ex


# -- Responses API streaming (OpenAI wire format) ------------------------------------------


def _responses_stream(srv: FakeOpenAI, request: JSON) -> Iterator[str]:
    """``POST /v1/responses`` with ``stream: true``: the typed events OpenAI sends.

    response.created, the text as output_text deltas, then response.completed carrying the
    full response with its usage (the same body the non-streaming call answers).
    """
    final = srv._response(request)
    item = final["output"][0]
    pending = {**final, "status": "in_progress", "output": [], "usage": None}
    seq = itertools.count()

    def event(kind: str, **fields: Any) -> str:
        return _sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    started = {**item, "status": "in_progress", "content": []}
    yield event("response.output_item.added", output_index=0, item=started)
    # OpenAI sends logprobs in each output_text part (LiteLLM 1.80 refuses a part without).
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    yield event("response.content_part.added", **where, part=part)
    for piece in _split_words(srv.content):
        yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
    yield event("response.output_text.done", **where, text=srv.content, logprobs=[])
    yield event("response.content_part.done", **where, part={**part, "text": srv.content})
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.completed", response=final)


if importlib.util.find_spec("pytest") is not None:
    import pytest

    @pytest.fixture
    def fake_openai() -> Iterator[FakeOpenAI]:
        """A running FakeOpenAI with default usage (prompt=10, completion=5)."""
        with FakeOpenAI() as srv:
            yield srv

    @pytest.fixture
    def fake_anthropic() -> Iterator[FakeAnthropic]:
        """A running FakeAnthropic with default usage (input=10, output=5)."""
        with FakeAnthropic() as srv:
            yield srv

    @pytest.fixture
    def no_external_network() -> Iterator[list[str]]:
        """Block non-loopback DNS and connects for the test; yields the hosts attempted."""
        with block_external_network() as attempted:
            yield attempted
