"""What the API answers, beside `domain.lifecycle.TicketState` (a ticket's state as of any
moment is `domain.kinds.replay`, the one fold of every kind)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.evidence import Evidence
from domain.lifecycle import TicketState


class TicketCreated(BaseModel):
    ticket_id: str
    state: TicketState


class HistoryEvent(BaseModel):
    version: int
    type: str
    at: datetime = Field(description="business time: when it happened (the workflow clock)")
    actor: str
    data: dict[str, Any]
    recorded_at: datetime = Field(description="when the event store recorded it")
    command_id: str
    prev_hash: str
    hash: str


class LinkedCase(BaseModel):
    kind: str = Field(description="complaint, return or inspection")
    case_id: str
    event: str
    at: datetime
    actor: str


class History(BaseModel):
    ticket_id: str
    intact: bool = Field(description="every event's hash and link match (domain.chain) and, where the ticket's "
                                     "workflow could be asked, the stored events are the ones it recorded")
    evidence: Evidence = Field(description="what was checked and what was found (api.evidence)")
    events: list[HistoryEvent]
    linked_cases: list[LinkedCase] = Field(
        default_factory=list, description="complaints, returns and inspections that name this ticket")


class Verification(BaseModel):
    ticket_id: str
    intact: bool
    versions: int
    first_bad_version: int | None = Field(description="the first version whose hash or link does not match")
    detail: str


class TicketSummary(BaseModel):
    ticket_id: str
    status: str
    customer: str | None = None
    site: str | None = None
    product_model: str | None = None
    channel: str | None = None
    received_by: str | None = None
    severity: str | None = None
    zone: str | None = None
    service_category: str | None = None
    supervisor: str | None = None
    assignee: str | None = None
    reported_at: datetime | None = None
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    met: dict[str, datetime] = Field(default_factory=dict)
    breached: bool = False
    breached_goals: list[str] = Field(default_factory=list)
    escalation_level: int = 0
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    version: int = 0


class TicketPage(BaseModel):
    items: list[TicketSummary]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page, null on the last")
