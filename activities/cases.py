"""Activities of the complaint, return/exchange, plan and inspection workflows, each a
few lines: the decisions are in domain/ and workflows/.

- `record_case` appends one event to a case aggregate, exactly once per command id,
  in the tickets' event store (one store, one notification log for the read models).
- `org_lookup` answers the workflows' questions about the org file.
- `start_inspection` starts a plan's visit as its own workflow (the plan's monthly run
  continues as new; a child would be tied to a closed run).
- `open_fault_ticket` opens a fault ticket for an inspection finding. A workflow
  cannot use the Temporal client, and a parent cannot send the ticket's report Update
  to a child, so this activity does what the API does: update-with-start of the
  TicketWorkflow with the report, under a ticket id derived from the inspection and
  the finding, with the report's fixed update id. A retry finds the ticket already
  reported (or already closed) and returns the same id: exactly one ticket.
Warnings and escalations reuse the ticket activities `escalation_target` and `notify`."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import RecordConflictError
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.store import Tickets
from domain.casework import IllegalStep
from domain.chained import ChainedCase, case_uuid
from domain.complaint import Complaint
from domain.inspection import Inspection
from domain.org import Org
from domain.plan import MaintenancePlan
from domain.returns import ReturnCase
from domain.steps import ReportTicket
from workflows.case_messages import InspectionStart
from workflows.messages import ReportCommand, StartTicket
from workflows.ticket import TicketWorkflow, ticket_workflow_id

AGGREGATES: dict[str, type[ChainedCase]] = {c.KIND: c for c in (Complaint, ReturnCase, Inspection, MaintenancePlan)}


class CaseRecordCommand(BaseModel):
    kind: str  # complaint | return | inspection | plan
    case_id: str
    command_id: str  # deterministic: workflow id + update id or alarm key
    event_type: str
    step: str | None = None
    at: datetime
    actor: str
    data: dict[str, Any]


class OrgQuery(BaseModel):
    staff: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)


class StartVisit(BaseModel):
    task_queue: str
    visit: InspectionStart


class OpenFaultTicket(BaseModel):
    ticket_id: str
    task_queue: str
    actor: str
    report: dict[str, Any]  # domain.steps.ReportTicket fields


def get_case(store: Tickets, kind: str, case_id: str) -> ChainedCase:
    """The case aggregate; raises AggregateNotFoundError when it was never recorded."""
    return store.repository.get(case_uuid(kind, case_id))


def case_history(store: Tickets, kind: str, case_id: str) -> list[dict[str, Any]]:
    """The case's recorded events in order, as plain dicts (empty if unknown). The key
    "ticket" holds the aggregate id, as `domain.chain.verify` expects."""
    return [{
        "ticket": str(e.originator_id), "version": e.originator_version, "type": type(e).__name__,
        "at": e.at, "actor": e.actor, "command_id": e.command_id, "data": e.data,
        "prev_hash": e.prev_hash, "hash": e.hash, "recorded_at": e.timestamp,
    } for e in store.events.get(case_uuid(kind, case_id))]


def fill_case_ids(store: Tickets, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Links from the `ticket_links` read model, each with its case id: an inspection
    finding recorded before findings carried their inspection's id gets it from the
    inspection's own record."""
    for link in links:
        if link.get("case_id") is None:
            link["case_id"] = store.repository.get(UUID(link["originator_id"])).state.case_id
    return links


class CaseActivities:
    def __init__(self, store: Tickets, org: Org, client: Client | None = None):
        self.store, self.org, self.client = store, org, client

    @activity.defn(name="record_case")
    def record_case(self, cmd: CaseRecordCommand) -> int:
        """Append one event, exactly once per command id; returns the case's version."""
        for _ in range(3):
            try:
                return self._record_once(cmd)
            except RecordConflictError:
                continue  # a concurrent attempt of the same command won the race: look again
            except IllegalStep as e:
                raise ApplicationError(str(e), {"status": e.status, "step": e.step}, type="IllegalStep",
                                       non_retryable=True) from None
        raise ApplicationError(f"version conflict recording {cmd.command_id}", type="Conflict")

    def _record_once(self, cmd: CaseRecordCommand) -> int:
        aggregate = AGGREGATES[cmd.kind]
        try:
            case = get_case(self.store, cmd.kind, cmd.case_id)
        except AggregateNotFoundError:
            if cmd.event_type != aggregate.CREATED:
                raise ApplicationError(f"{cmd.kind} {cmd.case_id} is not recorded", type="UnknownCase",
                                       non_retryable=True) from None
            case = aggregate.open(cmd.case_id, at=cmd.at, actor=cmd.actor, command_id=cmd.command_id, data=cmd.data)
        else:
            if cmd.command_id in case.command_ids:
                return case.version  # recorded by an earlier attempt
            case.record(cmd.event_type, at=cmd.at, actor=cmd.actor, command_id=cmd.command_id, data=cmd.data,
                        step=cmd.step)
        self.store.save(case)
        return case.version

    @activity.defn(name="org_lookup")
    def org_lookup(self, q: OrgQuery) -> dict[str, Any]:
        """Known staff and departments by id, and the first department of each kind asked."""
        deps = self.org.departments

        def department(d) -> dict[str, Any]:
            head = self.org.get(d.head)
            return {"id": d.id, "name": d.name, "kind": d.kind, "head": d.head,
                    "head_name": head.name if head else None}

        return {
            "staff": {s.id: {"id": s.id, "name": s.name, "role": s.role, "department": s.department,
                             "superior": s.superior} for s in map(self.org.get, q.staff) if s is not None},
            "departments": {d: department(deps[d]) for d in q.departments if d in deps},
            "kinds": {k: department(d) for k in q.kinds
                      for d in [next((d for d in deps.values() if d.kind == k), None)] if d is not None},
        }

    @activity.defn(name="start_inspection")
    async def start_inspection(self, req: StartVisit) -> str:
        """Start a plan's visit as a workflow of its own; once, however often it is retried."""
        workflow_id = f"inspection-{req.visit.inspection_id}"
        try:
            await self._client().start_workflow(
                "Inspection", req.visit, id=workflow_id, task_queue=req.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt, or an earlier run of the plan
        return workflow_id

    def _client(self) -> Client:
        if self.client is None:
            raise ApplicationError("no Temporal client to start workflows with", type="NoClient", non_retryable=True)
        return self.client

    @activity.defn(name="open_fault_ticket")
    async def open_fault_ticket(self, req: OpenFaultTicket) -> str:
        """Report a fault ticket for an inspection finding; the same ticket on a retry."""
        op = WithStartWorkflowOperation(
            TicketWorkflow.run, StartTicket(ticket_id=req.ticket_id), id=ticket_workflow_id(req.ticket_id),
            task_queue=req.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        try:
            await self._client().execute_update_with_start_workflow(
                TicketWorkflow.report, ReportCommand(actor=req.actor, report=ReportTicket(**req.report)),
                start_workflow_operation=op, id="report")
        except WorkflowAlreadyStartedError:
            pass  # reported by an earlier attempt, and closed since
        except WorkflowUpdateFailedError as e:
            if getattr(e.cause, "type", None) != "IllegalStep":  # IllegalStep: already reported
                raise
        return req.ticket_id

    def all(self) -> list:
        return [self.record_case, self.org_lookup, self.start_inspection, self.open_fault_ticket]
