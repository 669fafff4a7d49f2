"""The HTTP side of a GraphQL request, checked before anything else reads it (issue 11).

- The body is read up to the endpoint's limit and no further: a `Content-Length` above it, or a stream
  that passes it, is answered 413 without the rest being read.
- A JSON body must be one GraphQL request: UTF-8, valid JSON (nesting included), an object (batching is
  off), `query` and `operationName` strings or null, `variables` and `extensions` objects or null.
  Anything else is answered 400, `extensions.code` = `BAD_REQUEST`, never an internal error.

Both answers have the shape of a GraphQL request error: `{"errors": [{"message", "extensions": {"code"}}]}`.
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson
from starlette.responses import JSONResponse

BAD_REQUEST = "BAD_REQUEST"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"


class TransportError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"errors": [{"message": self.message, "extensions": {"code": self.code}}]},
                            status_code=self.status)


def too_large(limit: int) -> TransportError:
    return TransportError(413, PAYLOAD_TOO_LARGE, f"the request body is larger than {limit} bytes")


def unsupported_media_type() -> TransportError:
    return TransportError(415, UNSUPPORTED_MEDIA_TYPE, "send the request as Content-Type: application/json")


def bad_request(message: str) -> TransportError:
    return TransportError(400, BAD_REQUEST, message)


async def read_body(scope: dict, receive: Any, limit: int) -> bytes:
    """The request body, at most `limit` bytes; raises TransportError(413) as soon as it is known to be
    larger (from `Content-Length`, or while counting the streamed bytes)."""
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise bad_request("the client went away before the request body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise bad_request("Content-Length is not a number") from None
            if length < 0:
                raise bad_request("Content-Length is not a number")
            return length
    return None


_LONG_NUMBER = re.compile(rb"\d{20}")  # may exceed 2^64; a till's 32-digit member code takes this path too (exact, slower)


def _slow_loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise bad_request("the request body is not valid JSON (or is nested too deep)") from None


_OBJECT_OR_NULL = ("variables", "extensions")
_STRING_OR_NULL = ("query", "operationName")


def check_json_request(body: bytes) -> dict:
    """The request object of a JSON body; raises TransportError(400) for anything that is not one."""
    if _LONG_NUMBER.search(body):  # orjson reads an integer beyond 64 bits as a float: the exact parser
        payload = _slow_loads(body)
    else:
        try:
            payload = orjson.loads(body)  # UTF-8 and JSON checked in one pass (issue 14: the request path)
        except orjson.JSONDecodeError:
            payload = _slow_loads(body)  # says why
    if not isinstance(payload, dict):
        raise bad_request("the request body must be a JSON object with a `query` (batching is off)")
    for key in _STRING_OR_NULL:
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise bad_request(f"`{key}` must be a string")
    for key in _OBJECT_OR_NULL:
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise bad_request(f"`{key}` must be a JSON object")
    return payload
