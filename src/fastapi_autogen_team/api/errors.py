"""Every error leaves as OpenAI's `{"error": {message, type, param, code}}` with its status.

Validation problems name the offending field in `param`; anything unexpected becomes a 500
whose body says nothing about the cause (the log has it, with the traceback).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ..errors import InternalError, InvalidRequest, MethodNotAllowed, NotFound, ServiceError
from ..wire import first_invalid_field

logger = logging.getLogger(__name__)

# Not a standard status: nginx's "client closed request", for logs and traces only.
CLIENT_CLOSED_REQUEST = 499


class ClientGone(Exception):
    """The client closed the connection before the response started."""


def error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _validation_error(error: RequestValidationError) -> InvalidRequest:
    problems = error.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return InvalidRequest("The request body is not valid JSON.")
    param = first_invalid_field(problems)
    reason = problems[0].get("msg", "Invalid value") if problems else "Invalid request"
    if param is None:
        return InvalidRequest(f"The request body is invalid: {reason}.")
    return InvalidRequest(f"Invalid value for {param!r}: {reason}.", param=param)


async def _on_service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    return error_response(error)


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(_validation_error(error))


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return error_response(NotFound(f"There is no route {request.url.path!r}."))
    if error.status_code == 405:
        return error_response(MethodNotAllowed(f"{request.method} is not allowed here."))
    if error.status_code >= 500:
        return error_response(InternalError())
    return error_response(InvalidRequest(str(error.detail)))


async def _on_client_gone(request: Request, error: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    # %r: a decoded path can hold newlines, which must not forge log lines.
    logger.error("unhandled error on %s %r", request.method, request.url.path, exc_info=error)
    return error_response(InternalError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(ClientGone, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected)
