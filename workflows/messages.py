"""What crosses into the ticket workflow: its start input and its Updates' arguments.

Kept out of the workflow module, and passed through the sandbox, so that pydantic
builds these classes once per process rather than once per workflow run."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from domain.steps import ReportTicket


class StartTicket(BaseModel):
    ticket_id: str


class ReportCommand(BaseModel):
    actor: str
    report: ReportTicket


class StepCommand(BaseModel):
    step: str
    actor: str
    data: dict[str, Any] = {}
