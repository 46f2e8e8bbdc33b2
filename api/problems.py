"""One table from exceptions to ``application/problem+json`` (API.md "Errors")."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from domain.errors import (
    BatchRefused,
    BusinessRuleBroken,
    Conflict,
    DomainError,
    InvalidInput,
    NotAllowed,
    NotAuthenticated,
    NotFound,
)

log = logging.getLogger("siyu.api")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://siyu.example/problems/"

STATUS_OF: list[tuple[type[DomainError], int]] = [
    (NotAuthenticated, 401),
    (NotAllowed, 403),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (BusinessRuleBroken, 422),
]
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "too_many_requests",
    503: "unavailable",
}


class ServiceUnavailable(DomainError):
    code = "not_caught_up"


TOO_DEEP = "the body is nested too deeply"
BODY_ROOT = "data"  # Litestar's name for where a body's own value sits


class BodyRequest(Request[Any, Any, Any]):
    """The app's request. Two things about reading a JSON body:

    - It is decoded strictly into the handler's body type (``data: JSONBody[SomeIn]``, a
      msgspec Struct): an integer field takes a JSON integer only, not ``"1000"`` nor
      ``1.0``, a boolean ``true``/``false`` only, a float a JSON number (an integer too:
      ``31`` is a latitude). Litestar converts every handler argument leniently
      (``strict=False``: right for query and path parameters, which are text by nature),
      so a body reaches it already decoded, as the Struct, which passes through; a refusal
      is a ``ValidationException`` like Litestar's own, naming the field
      (``field_path``). Decoding straight into the Struct is also one step where
      decoding to builtins and converting were two.
    - A body nested too deeply to decode is bad input (400 ``malformed_request``), not a
      server error. msgspec decodes recursively and raises ``RecursionError`` past the
      interpreter's depth (about a thousand levels): left alone it reached
      ``on_unexpected`` as a 500 with a traceback, on every POST and before the token was
      checked. Only the decoding of the body is translated; a ``RecursionError`` anywhere
      else is still a server error."""

    async def json(self) -> Any:
        try:
            body_type = _body_type(self.route_handler)
            if body_type is None:
                return await super().json()
            return _decode_strictly(await self.body(), body_type)
        except RecursionError:
            raise ClientException(TOO_DEEP) from None

    async def msgpack(self) -> Any:
        try:
            return await super().msgpack()
        except RecursionError:
            raise ClientException(TOO_DEEP) from None


_strict_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}


def _body_type(handler: Any) -> type[msgspec.Struct] | None:
    """The Struct a handler's ``data`` is (None: no such body)."""
    parameter = handler.parsed_fn_signature.parameters.get("data")
    body_type = None if parameter is None else parameter.annotation
    if isinstance(body_type, type) and issubclass(body_type, msgspec.Struct):
        return body_type
    return None


def _decode_strictly(body: bytes, body_type: type[msgspec.Struct]) -> Any:
    decoder = _strict_decoders.get(body_type)
    if decoder is None:
        decoder = _strict_decoders[body_type] = msgspec.json.Decoder(body_type, strict=True)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as e:
        error = {"message": str(e), "key": BODY_ROOT, "source": "body"}
        raise ValidationException("the body is not valid", extra=[error]) from None
    except msgspec.DecodeError as e:  # not JSON: as Litestar's own decoding answers
        raise SerializationException(str(e)) from None


def problem(
    status: int, code: str, detail: str, errors: list[dict[str, str]] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def on_domain_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, DomainError)
    if isinstance(exc, ServiceUnavailable):
        return problem(503, exc.code, exc.detail)
    if isinstance(exc, BatchRefused):
        status = 403 if exc.is_permission else 422
        refused = [
            {"event_id": r.item_id, "code": r.code, "detail": r.detail} for r in exc.refusals
        ]
        return problem(status, exc.code, exc.detail, refused=refused)
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            errors = None
            if isinstance(exc, InvalidInput):
                errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            return problem(status, exc.code, exc.detail, errors)
    return problem(422, exc.code, exc.detail)


_FIELD_IN_MESSAGE = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")


def field_path(location: str, message: str) -> tuple[str, str]:
    """(the JSON path of the field ``message`` is about, the message without its path).

    msgspec says where it stopped (``location``: ``data`` for the body itself, or a path
    like ``lines[0]``, also as `` - at `$.lines[0]` `` in the message); a missing or an
    unknown field is named in the message only, under that place: ``Object missing
    required field `scan_id` `` at the root is ``scan_id``, under ``member`` it is
    ``member.external_id``. The body itself, wrong as a whole, is ``body``."""
    found = _FIELD_IN_MESSAGE.search(message)
    if found:
        message = message[: found.start()]
        location = found.group(1) or BODY_ROOT
    named = _NAMED_FIELD.match(message)
    if named:
        name = named.group(1)
        location = name if location in ("", BODY_ROOT) else f"{location}.{name}"
    return ("body" if location == BODY_ROOT else location), message


def _validation_errors(exc: ValidationException) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        field, message = field_path(str(item.get("key", "")), message)
        if message == "'data'":
            message = "a JSON body is required"
        errors.append({"field": field, "message": message})
    return errors


def on_http_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or str(exc.detail)
        return problem(400, "validation_failed", detail, errors)
    if status == 400:
        return problem(400, "malformed_request", f"the request could not be read: {exc.detail}")
    if status >= 500:
        log.error("http error %s: %s", status, exc.detail)
    return problem(status, HTTP_CODES.get(status, "error"), str(exc.detail))


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "an unexpected error; it was logged"
    )


EXCEPTION_HANDLERS: Any = {
    DomainError: on_domain_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
