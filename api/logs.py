"""What a failed GraphQL request leaves in the log (issue 11, finding 11).

Strawberry logs every error of a request on `strawberry.execution` at ERROR, as the GraphQLError itself,
whose text quotes the request's source lines (inline passwords and SMS codes included) and whose
traceback comes along even for a client's typing mistake. A filter on that logger rewrites each record:

- the line names the request (a request id, the operation name, the first 16 hex digits of the query
  text's SHA-256), the error's path and code, and its message with every quoted value and number
  masked; never the query text, never the variables;
- a client's mistake (syntax, validation, a variable of the wrong type, one of our own coded errors)
  is INFO without a traceback; an internal fault stays ERROR with its traceback.

The same holds for a record of the prepared path (`mallpoints.graphql`) whose cause is a GraphQLError.
`bind_request` is called by the endpoint once it has read the request; the filter reads it back.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone

from graphql import GraphQLError
from redis.exceptions import RedisError

from api.schema.errors import should_mask


@dataclass(frozen=True)
class RequestLabel:
    request_id: str
    operation: str
    query_hash: str


_current: ContextVar[RequestLabel | None] = ContextVar("mallpoints_request_label", default=None)
_request_id: ContextVar[str | None] = ContextVar("mallpoints_request_id", default=None)
_SAFE_ID = re.compile(rb"[0-9A-Za-z._-]{8,64}")


def request_id() -> str | None:
    """The id of the HTTP request being served (None outside one)."""
    return _request_id.get()


class RequestIdMiddleware:
    """Gives every HTTP request an id, answered in `X-Request-Id` and stamped on every log line written
    while it is served. A caller's (or a proxy's) own `X-Request-Id` is kept when it is a plain token of
    8 to 64 characters, so one id follows a request through the proxy's log and ours; anything else is
    replaced (a header is never copied into the log as sent)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((value for name, value in scope.get("headers", ()) if name == b"x-request-id"), b"")
        rid = sent.decode("ascii") if _SAFE_ID.fullmatch(sent) else uuid.uuid4().hex[:16]
        token = _request_id.set(rid)
        header = (b"x-request-id", rid.encode("ascii"))

        async def stamped(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            _request_id.reset(token)


def query_hash(text: str | None) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16] if text else "-"


_FIRST_OPERATION = re.compile(r"\s*(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


def bind_request(query: str | None, operation_name: str | None) -> RequestLabel:
    if not operation_name and query:  # the document's first operation, when the client named none
        named = _FIRST_OPERATION.match(query)
        operation_name = named.group(1) if named else None
    label = RequestLabel(_request_id.get() or uuid.uuid4().hex[:16], _safe_name(operation_name), query_hash(query))
    _current.set(label)
    return label


def _safe_name(name: str | None) -> str:
    """An operation name as a client sent it, if it is a GraphQL name (else a mark, never the text)."""
    if not name:
        return "-"
    return name if re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]{0,63}", name) else "(not a name)"


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NUMBER = re.compile(r"\d{3,}")


def mask(message: str) -> str:
    """A message with quoted values and numbers of 3 or more digits replaced by …"""
    return _NUMBER.sub("…", _QUOTED.sub("'…'", message.splitlines()[0] if message else ""))[:300]


class GraphQLErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.msg
        if not isinstance(error, GraphQLError):
            raised = record.exc_info[1] if record.exc_info else None
            if not isinstance(raised, GraphQLError):
                return True
            # an error logged with a GraphQLError as its cause (a variable of the wrong type, seen by the
            # prepared path): a client's mistake, whose text may quote the value
            error = GraphQLError(raised.message, path=None, original_error=None, extensions=raised.extensions)
        label = _current.get() or RequestLabel("-", "-", query_hash(error.source.body if error.source else None))
        client_mistake = error.path is None or not should_mask(error)
        code = (error.extensions or {}).get("code") or ("client" if client_mistake else "internal")
        path = ".".join(str(step) for step in error.path) if error.path else "-"
        record.msg = "graphql error request=%s operation=%s query_sha256=%s path=%s code=%s: %s"
        record.args = (label.request_id, label.operation, label.query_hash, path, code, mask(error.message))
        if client_mistake:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


class RepeatedFailureFilter(logging.Filter):
    """Redis failures summarised: of the records with the same logger and message template whose
    cause is a Redis or network error, the first of each `window` seconds passes (with its traceback)
    and the others are counted; the next one to pass says how many were left out."""

    def __init__(self, window: float = 60.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        raised = record.exc_info[1] if record.exc_info else None
        if not isinstance(raised, (RedisError, OSError)):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        started, left_out = self._seen.get(key, (float("-inf"), 0))
        if now - started < self.window:
            self._seen[key] = (started, left_out + 1)
            return False
        if len(self._seen) > 1_000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if left_out:
            record.msg = f"{record.msg} ({left_out} more like this in the {self.window:.0f} s before, not logged)"
        return True


_installed = GraphQLErrorFilter()
_repeats = RepeatedFailureFilter()
# the loggers of the Redis gates (rate limits, nonces, flash-sale and stock gates)
REDIS_GATE_LOGGERS = ("mallpoints.ratelimit", "mallpoints.integrations", "mallpoints.flash_sales", "mallpoints.stock_gate")


def forget_repeats() -> None:
    """Starts the summaries' windows again (tests)."""
    _repeats._seen.clear()


def install() -> None:
    """Puts the filters on Strawberry's error logger, the prepared path's and the Redis gates' (once
    per process)."""
    for names, chosen in ((("strawberry.execution", "mallpoints.graphql"), _installed), (REDIS_GATE_LOGGERS, _repeats)):
        for name in names:
            logger = logging.getLogger(name)
            if chosen not in logger.filters:
                logger.addFilter(chosen)


# --- the log's format ------------------------------------------------------------------------------------

_PHONE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_PLATE = re.compile(r"([\u4e00-\u9fa5][A-Z])[A-Z0-9]{3,4}([A-Z0-9]{2})")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def mask_personal(text: str) -> str:
    """Mainland mobile numbers and plates kept to their first and last characters (a last line of
    defence: the services log ids, not numbers)."""
    return _PLATE.sub(r"\1***\2", _PHONE.sub(r"\1\2****\3", text))


class PersonalDataFilter(logging.Filter):
    """On the handler: stamps the request id and masks phone numbers and plates in the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        message = record.getMessage()
        masked = mask_personal(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (production): time in UTC, level, logger, request id, message, and the
    traceback as one string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or _request_id.get() or "-",
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: int, *, production: bool, stream=None) -> logging.Handler:
    """The process's one log handler: JSON lines in production, readable text in development; both
    stamped with the request id and masked. uvicorn's loggers propagate to it (`serve` passes
    `log_config=None`)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if production else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
