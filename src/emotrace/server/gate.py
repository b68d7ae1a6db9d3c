"""The request gate: a pure ASGI middleware in front of every route that answers before any
body is read: the Host header (on localhost), the Origin of POSTs and WebSockets, the token
and the declared length; bodies are counted and timed as they arrive."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import anyio
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emotrace.server.settings import MB, ServerSettings

#: Body size for routes that take none (everything but the two uploads).
SMALL_BODY = 64 * 1024
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def json_answer(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer: ``{"detail": ...}`` (:class:`~emotrace.server.schemas.Problem`)."""
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes tokens with any characters."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  expected.encode("utf-8", "surrogateescape"))


def hostname(host: str) -> str:
    """``localhost`` from ``localhost:8000``, ``[::1]`` from ``[::1]:8000``."""
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestGate:
    """Pure ASGI middleware that answers before the app reads a byte of the body.

    - On a loopback address, a ``Host`` that is not a local name gets 400 (DNS rebinding).
    - A POST, DELETE or WebSocket whose ``Origin`` is another site gets 403 unless
      ``cors_origins`` names it (cross-site requests from pages the user visits).
    - ``/v1``: a missing or wrong token gets 401 and a declared ``Content-Length`` above the
      route's limit 413, before the upload is read; a body longer than it is cut with 413, and a
      body that sends nothing for ``body_timeout_s`` with 408.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app, self.settings = app, settings
        self.limits = {("POST", "/v1/predict"): settings.max_image_bytes + MB,
                       ("POST", "/v1/jobs"): settings.max_video_bytes + MB}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[1]})
            else:
                await json_answer(*refusal)(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            limit = self.limits.get((scope["method"], scope["path"].rstrip("/")), SMALL_BODY)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await json_answer(413, _too_large(limit))(scope, receive, send)
                return
            await _LimitedBody(self.app, limit, self.settings.body_timeout_s)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, dict] | None:
        host = headers.get("host", "")
        allowed = self.settings.allowed_hosts
        if allowed is not None and hostname(host) not in allowed:
            return (400, ("this server answers to localhost only (the Host header names another "
                          "host); use http://127.0.0.1 or serve with --host"), {})
        origin = headers.get("origin")
        if (origin is not None and (scope["type"] == "websocket"
                                    or scope["method"] not in _SAFE_METHODS)
                and origin.rstrip("/") not in self.settings.cors_origins
                and urlsplit(origin).netloc != host):
            return (403, ("cross-origin request refused; the server allows other sites' pages "
                          "only with --cors-origin"), {})
        if (scope["type"] == "http" and scope["path"].startswith("/v1")
                and self.settings.token is not None and scope["method"] != "OPTIONS"):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not same_token(given.strip(), self.settings.token):
                return (401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return None


def _too_large(limit: int) -> str:
    return f"the upload is larger than {limit // MB} MB" if limit >= MB else \
        "this route takes no upload"


class _LimitedBody:
    """Counts the body as it arrives: over ``limit`` -> 413, ``timeout_s`` without a byte -> 408
    (JSON, like every other error); the app then sees a disconnected client."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, answered, started = 0, False, False

        async def send_once(message: Message) -> None:
            nonlocal started
            if answered:
                return  # our error answer went first
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def answer(code: int, detail: str) -> Message:
            nonlocal answered
            if not started and not answered:
                await json_answer(code, detail, {"Connection": "close"})(scope, receive, send)
            answered = True
            return {"type": "http.disconnect"}

        async def counted() -> Message:
            nonlocal received
            if answered:
                return {"type": "http.disconnect"}
            with anyio.move_on_after(self.timeout_s) as waited:
                message = await receive()
            if waited.cancelled_caught:
                return await answer(408, f"the request body stalled for {self.timeout_s:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    return await answer(413, _too_large(self.limit))
            return message

        await self.app(scope, counted, send_once)
