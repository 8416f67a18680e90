"""Activities that start other workflows, each a few lines:

- `start_inspection` starts a plan's visit as its own workflow (the plan's monthly run
  continues as new; a child would be tied to a closed run).
- `open_fault_ticket` opens a fault ticket for an inspection finding. A workflow
  cannot use the Temporal client, and a parent cannot send the ticket's report Update
  to a child, so this activity does what the API does: update-with-start of the
  TicketWorkflow with the report, under a ticket id derived from the inspection and
  the finding, with the report's fixed update id. A retry finds the ticket already
  reported (or already closed) and returns the same id: exactly one ticket."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.steps import ReportTicket
from workflows.case_messages import InspectionStart
from workflows.messages import CODE, ReportCommand, StartTicket
from workflows.ticket import TicketWorkflow, ticket_workflow_id


class StartVisit(BaseModel):
    task_queue: str
    visit: InspectionStart


class OpenFaultTicket(BaseModel):
    ticket_id: str
    task_queue: str
    actor: str
    report: dict[str, Any]  # domain.steps.ReportTicket fields


class Visits:
    def __init__(self, client: Client):
        self.client = client

    @activity.defn(name="start_inspection")
    async def start_inspection(self, req: StartVisit) -> str:
        """Start a plan's visit as a workflow of its own; once, however often it is retried."""
        workflow_id = f"inspection-{req.visit.inspection_id}"
        try:
            await self.client.start_workflow(
                "Inspection", req.visit, id=workflow_id, task_queue=req.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt, or an earlier run of the plan
        return workflow_id

    @activity.defn(name="open_fault_ticket")
    async def open_fault_ticket(self, req: OpenFaultTicket) -> str:
        """Report a fault ticket for an inspection finding; the same ticket on a retry."""
        op = WithStartWorkflowOperation(
            TicketWorkflow.run, StartTicket(ticket_id=req.ticket_id, code=CODE), id=ticket_workflow_id(req.ticket_id),
            task_queue=req.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        try:
            await self.client.execute_update_with_start_workflow(
                TicketWorkflow.report, ReportCommand(actor=req.actor, report=ReportTicket(**req.report)),
                start_workflow_operation=op, id="report")
        except WorkflowAlreadyStartedError:
            pass  # reported by an earlier attempt, and closed since
        except WorkflowUpdateFailedError as e:
            if getattr(e.cause, "type", None) != "IllegalStep":  # IllegalStep: already reported
                raise
        return req.ticket_id

    def all(self) -> list:
        return [self.start_inspection, self.open_fault_ticket]
