"""What crosses into the ticket workflow: its start input and its Updates' arguments.

Kept out of the workflow module, and passed through the sandbox, so that pydantic
builds these classes once per process rather than once per workflow run."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from domain.steps import ReportTicket


# The workflow code a run is started by, carried in its start input (`code`). A run started
# by code 1 or later takes every change made up to code 1 without asking `workflow.patched`:
# a new case's history then holds no patch marker, and its tasks no upsert of
# TemporalChangeVersion, which the server writes to its visibility store like any search
# attribute (bench/api_steps.py's bare+index path measures one). A run whose input has no
# `code` (0) was started before: it asks `workflow.patched` as it always did. A change
# after this one is patched as usual; raising CODE then lets new runs take it unpatched.
CODE = 1


class StartTicket(BaseModel):
    ticket_id: str
    code: int = 0  # the workflow code that started the run (CODE); 0: before there was one


class ReportCommand(BaseModel):
    actor: str
    report: ReportTicket


class StepCommand(BaseModel):
    step: str
    actor: str
    data: dict[str, Any] = {}
