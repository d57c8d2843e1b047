"""Domain errors and their one mapping to HTTP responses."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from backend.db import StoreError

# StoreError codes → HTTP: a busy or unreachable database is worth retrying, the rest is not.
STORE_STATUS = {"integrity": 409, "busy": 503, "unavailable": 503, "database": 500}


class ApiError(Exception):
    """An error a route reports; `field` names the offending input when there is one."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"msg": self.message, "type": "causalwatch_error"}
        if self.field is not None:
            item["loc"] = ["body", *self.field.split(".")]
            item["field"] = self.field
        return {"detail": [item]}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):  # a body that was not JSON
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes the offending input; a NaN or Infinity there would make the error
        # response itself fail to render (a 500 instead of the 422).
        detail = [
            {**{k: v for k, v in e.items() if k != "ctx"}, "input": _json_safe(e.get("input")),
             "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or None}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, exc: StoreError) -> JSONResponse:
        status = STORE_STATUS.get(exc.code, 500)
        headers = {"Retry-After": "1"} if status == 503 else None
        body = {"detail": [{"msg": f"database: {exc.message}", "type": f"store_{exc.code}"}]}
        return JSONResponse(body, status_code=status, headers=headers)
