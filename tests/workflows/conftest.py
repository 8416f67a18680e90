"""The workflow tests run every workflow in the Temporal SDK's sandbox (the deployed worker
does not: worker.workflow_runner), so a workflow that reads the clock, makes ids or does
I/O fails here, where it is written."""
import pytest


@pytest.fixture(autouse=True)
def in_the_sandbox(monkeypatch):
    monkeypatch.setenv("WEIBAO_WORKFLOW_SANDBOX", "true")
