"""The largest request body the API reads (WEIBAO_API_MAX_BODY, 1 MiB by default): a
larger one is answered 413 before it is read whole. A declared Content-Length over the
limit is refused before the app sees the request; a body streamed without one is counted
as it arrives and refused at the first byte over.

The longest URL (path and query) the API takes is MAX_URL bytes: a longer one is a 414
in the API's error shape. The server reads a request's head whole up to HEAD_BYTES
(uvicorn's h11_max_incomplete_event_size), so that the API, not the HTTP parser, answers a
long URL: with the parser's own 16 KiB, a head that arrived in pieces got a plain-text
400 and the connection closed under the client's feet (a reset while it still sent), and
the same head arriving at once went through."""
from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import body


MAX_URL = 32 * 1024  # bytes of path and query string
HEAD_BYTES = 1 << 20  # bytes of a request's head the server reads whole


class BodyTooLarge(HTTPException):
    """Raised while the body is read; the app's handler answers it (api.errors)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if url > MAX_URL:
            await JSONResponse(body("uri_too_long", f"the URL is {url} bytes, longer than the limit of {MAX_URL}",
                                    "url"), status_code=414, headers={"Connection": "close"})(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # the rest of the body is never read: the connection cannot carry another request
            await JSONResponse(body("too_large", BodyTooLarge(self.max_bytes).detail, "body"), status_code=413,
                               headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None
