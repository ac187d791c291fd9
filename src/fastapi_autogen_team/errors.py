"""The service's errors, each knowing its HTTP status and its OpenAI `type` and `code`.

They live outside `api/` because the run owner in `streaming.py` and the model-client layer
in `teams/` raise them too; only `api/` knows how to turn one into an HTTP response.
Messages are shown to clients, so they never carry exception text from below.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"

    def __init__(
        self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(ServiceError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class AuthenticationFailed(ServiceError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(ServiceError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model {model!r} does not exist. GET /v1/models lists the available models.",
            param="model",
        )


class NotFound(ServiceError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(ServiceError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(ServiceError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(ServiceError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamFailed(ServiceError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeout(ServiceError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class ServiceUnavailable(ServiceError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class RunTimedOut(ServiceError):
    status = 504
    type = "timeout_error"
    code = "run_timeout"


class InternalError(ServiceError):
    def __init__(self) -> None:
        super().__init__("The service failed to answer this request. Try again later.")
