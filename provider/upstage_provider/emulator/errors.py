"""Error answers, in either of the two shapes Upstage's docs show.

``openai`` style: ``{"error": {"message", "type", "code", "param"}}``; ``flat`` style:
``{"code": <status>, "message"}``. A server speaks one of them (``error_style``) so a client
can be tested against each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from upstage_provider.exceptions import (
    CorruptDocumentError,
    DocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    PageTooLargeError,
    TooManyPagesError,
    UnsupportedDocumentError,
)

_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An error the emulator answers with; raised anywhere in a handler, rendered in one place."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type or _TYPES.get(status, "server_error" if status >= 500 else "api_error")
        self.headers = dict(headers or {})


def error_body(error: ApiError, style: str) -> dict[str, Any]:
    if style == "flat":
        return {"code": error.status, "message": error.message}
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "code": error.code,
            "param": error.param,
        }
    }


def error_response(error: ApiError, style: str) -> JSONResponse:
    return JSONResponse(error_body(error, style), status_code=error.status, headers=error.headers)


def from_document_error(exc: DocumentError) -> ApiError:
    """
    The status a document problem gets.

    415 only when the *kind* of file is wrong; a file of a supported kind that is empty,
    damaged or encrypted is a bad request (400), since sending it as another type would not
    help; limits (bytes, pages, pixels) are 413.
    """
    message = str(exc)
    if isinstance(exc, UnsupportedDocumentError):
        return ApiError(415, message, code="unsupported_document", param="document")
    if isinstance(exc, EmptyDocumentError):
        return ApiError(400, message, code="empty_document", param="document")
    if isinstance(exc, DocumentTooLargeError):
        return ApiError(413, message, code="file_too_large", param="document")
    if isinstance(exc, TooManyPagesError):
        return ApiError(413, message, code="too_many_pages", param="document")
    if isinstance(exc, PageTooLargeError):
        return ApiError(413, message, code="page_too_large", param="document")
    if isinstance(exc, CorruptDocumentError):
        return ApiError(400, message, code="invalid_document", param="document")
    return ApiError(400, message, code="invalid_document", param="document")
