"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with its status.

Every failure the server can answer with goes through ``APIError`` so clients (the official
``openai`` package included) see the status and body they expect: 400 invalid_request_error,
401 authentication_error, 404 not_found_error / model_not_found, 413, 429 rate_limit_exceeded,
503 server overloaded, 504 timeout. FastAPI's own 422 for validation is never used: bodies are
parsed by protocol.py, not by pydantic.
"""
from __future__ import annotations

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error",
         413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
         503: "server_overloaded", 504: "timeout_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None, type: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.type = type or TYPES.get(status, "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400: the request is wrong, and ``param`` names the field that is."""
    return APIError(400, message, param=param, code=code)
