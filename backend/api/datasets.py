"""REST: the data files runs can name (data dir and uploads), and uploading one."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request

from backend.api.deps import ServicesDep
from backend.datasets import DatasetError, list_datasets, save_upload
from backend.errors import ApiError, ErrorBody, error_responses
from backend.schemas import DatasetPublic

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
UPLOAD_PATH = router.prefix


@router.get("", response_model=list[DatasetPublic])
async def get_datasets(services: ServicesDep) -> list[DatasetPublic]:
    """Files of `--data-dir` (named as they are) and uploaded ones (`upload:<name>`)."""
    return await asyncio.to_thread(list_datasets, services.settings)


@router.post(
    "", status_code=201, response_model=DatasetPublic,
    responses={
        **error_responses(413),
        409: {"model": ErrorBody, "description": "An uploaded file of that name exists"},
    },
    # Any bytes are a valid body as far as HTTP goes: what the file must hold is checked
    # by the route (422 naming what is wrong), whatever the content type.
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def upload_dataset(
    request: Request,
    services: ServicesDep,
    name: Annotated[str, Query(min_length=1, max_length=128, description="e.g. my_data.csv")],
) -> DatasetPublic:
    """The raw body is the file (a CSV, or a reference graph JSON); its size is bounded by
    the backend's upload limit (413 above it). A name already uploaded is refused (409)."""
    body = await request.body()
    try:
        return await asyncio.to_thread(save_upload, services.settings, name, body)
    except DatasetError as err:
        raise ApiError(err.status, err.message, err.field) from None
