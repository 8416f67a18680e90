"""What crosses into the complaint, return/exchange, plan and inspection workflows.

Kept out of the workflow modules, and passed through the sandbox, so that pydantic
builds these classes once per process rather than once per workflow run. Steps use
the ticket's `StepCommand` (step, actor, data)."""
from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from domain.complaint_rules import RegisterComplaint
from domain.maintenance import PlanState, StartPlan
from domain.return_rules import RequestReturn
from workflows.messages import CODE, StepCommand

__all__ = ["CODE", "CaseStart", "PlanCommand", "PlanStart", "RegisterCommand", "RequestCommand", "InspectionStart",
           "StepCommand"]


class CaseStart(BaseModel):
    case_id: str
    windows: dict[str, timedelta] | None = None  # overrides of the window table, per goal
    code: int = 0  # the workflow code that started the run (workflows/messages.CODE)


class RegisterCommand(BaseModel):
    actor: str
    complaint: RegisterComplaint


class RequestCommand(BaseModel):
    actor: str
    request: RequestReturn


class PlanStart(BaseModel):
    contract_id: str
    state: PlanState | None = None  # carried over by continue-as-new
    windows: dict[str, timedelta] | None = None  # inspection windows per kind, for the visits it starts
    code: int = 0  # the workflow code that started the run (workflows/messages.CODE)


class PlanCommand(BaseModel):
    actor: str
    plan: StartPlan


class InspectionStart(BaseModel):
    inspection_id: str
    contract_id: str
    kind: str
    month: int
    due_at: datetime
    window: timedelta
    customer: str
    site: str
    contact_phone: str
    zone: str = "A"
    responsible: str | None = None
    code: int = 0  # the workflow code that started the run (workflows/messages.CODE)
