"""REST: read-only tickets, so a browser page never holds the admin token."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import ServicesDep
from backend.auth import mint_ticket
from backend.schemas import Ticket

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/tickets", response_model=Ticket)
def create_ticket(services: ServicesDep) -> Ticket:
    """A ticket for live websockets and downloads, valid `ticket_ttl_seconds`.

    Only the admin token reaches this (tickets open reads, and this is a POST): the
    dashboard's server asks for one per page connection.
    """
    settings = services.settings
    token = mint_ticket(settings.token, settings.ticket_ttl_seconds) if settings.token else None
    return Ticket(token=token, ttl_seconds=settings.ticket_ttl_seconds)
