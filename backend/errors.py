"""Domain errors and their one mapping to HTTP responses."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from backend.db import StoreError
from backend.json_safe import json_safe

# StoreError codes → HTTP: a busy or unreachable database is worth retrying, the rest is not.
STORE_STATUS = {"integrity": 409, "busy": 503, "unavailable": 503, "database": 500}


class ApiError(Exception):
    """An error a route reports; `field` names the offending input when there is one."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        *,
        existing_run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.existing_run_id = existing_run_id

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"msg": self.message, "type": "causalwatch_error"}
        if self.field is not None:
            item["loc"] = ["body", *self.field.split(".")]
            item["field"] = self.field
        if self.existing_run_id is not None:
            item["existing_run_id"] = self.existing_run_id
        return {"detail": [item]}


class ErrorItem(BaseModel):
    msg: str
    type: str
    loc: list[str | int] | None = None
    field: str | None = None
    existing_run_id: str | None = None  # 409 on restart: the run that already has the config


class ErrorBody(BaseModel):
    """Every causalwatch error: what was wrong, naming the field or the thing it is about."""

    detail: list[ErrorItem]


ERROR_MEANINGS = {
    400: "The body is not JSON, or the Host header names a host this server does not "
    "answer to (DNS rebinding; --allowed-host)",
    403: "A write from a foreign browser origin, or without a JSON body or the "
    "X-Causalwatch-Client header (CSRF)",
    404: "The run, preset, graph or log does not exist",
    409: "The run has already ended, or (restart) its config already ran",
    413: "The request body is over the size limit",
    429: "Too many runs are queued (max_queued)",
    503: "The database is busy or unreachable: retry (Retry-After)",
    507: "Too little free space in the runs directory (min_free_mb)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can answer (422 FastAPI adds)."""
    return {code: {"model": ErrorBody, "description": ERROR_MEANINGS[code]} for code in codes}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes the offending input; a NaN or Infinity there would make the error
        # response itself fail to render (a 500 instead of the 422).
        detail = [
            {**{k: v for k, v in e.items() if k != "ctx"}, "input": json_safe(e.get("input")),
             "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or None}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette answers from the first route whose path matched; RFC 9110 wants the
            # resource's methods, which can span routes (GET and POST /api/runs).
            methods = _allowed_methods(app, request)
            if methods:  # routes kept out of the schema (docs) keep Starlette's own header
                allow = {"Allow": ", ".join(methods)}
                exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), **allow})
        if exc.status_code == 400 and isinstance(exc.detail, str):
            # FastAPI's "error parsing the body" (not JSON, not UTF-8): name the field too.
            item = {"msg": f"body: {exc.detail.lower()}; send a JSON object",
                    "type": "body_not_json", "loc": ["body"], "field": "body"}
            return JSONResponse({"detail": [item]}, status_code=400)
        return await http_exception_handler(request, exc)

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, exc: StoreError) -> JSONResponse:
        status = STORE_STATUS.get(exc.code, 500)
        headers = {"Retry-After": "1"} if status == 503 else None
        body = {"detail": [{"msg": f"database: {exc.message}", "type": f"store_{exc.code}"}]}
        return JSONResponse(body, status_code=status, headers=headers)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods the app's OpenAPI document gives the request's path (its resource)."""
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)
