"""Log lines (issue 17): JSON lines off a terminal, readable text on one; the request id and
the case on every line that has them, and nowhere else."""
from __future__ import annotations

import io
import json
import logging

import pytest

from activities import logs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def root():
    """The root logger's handlers and level as they were, after the test."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(level)


def test_off_a_terminal_every_line_is_json_with_the_request_and_case_ids(root):
    out = io.StringIO()
    logs.setup(level="INFO", fmt="auto", stream=out)
    token = logs.begin("req-1")
    logs.bind(case_id="ticket-T1")
    logging.getLogger("weibao.test").info("step %s recorded", "arrive")
    logs.end(token)
    logging.getLogger("weibao.test").warning("between requests")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["message"], first["request_id"], first["case_id"], first["level"]) == \
        ("step arrive recorded", "req-1", "ticket-T1", "INFO")
    assert first["logger"] == "weibao.test" and "time" in first
    assert "request_id" not in second and "case_id" not in second


def test_on_a_terminal_lines_are_text_with_the_ids_at_the_end(root):
    out = Terminal()
    logs.setup(level="INFO", fmt="auto", stream=out)
    token = logs.begin("req-2")
    logging.getLogger("weibao.test").info("hello")
    logs.end(token)
    line = out.getvalue().strip()
    assert line.endswith("INFO hello [request_id=req-2]") and not line.startswith("{")


def test_a_line_logged_by_a_workflow_or_activity_names_its_case(root):
    out = io.StringIO()
    logs.setup(level="INFO", fmt="json", stream=out)
    logging.getLogger("temporalio.activity").info("recorded", extra={"temporal_activity": {
        "workflow_id": "complaint-C9", "activity_type": "record_case"}})
    assert json.loads(out.getvalue())["case_id"] == "complaint-C9"


@pytest.mark.parametrize("path, params, case", [
    ("/tickets/T1/steps/arrive", {"ticket_id": "T1", "step": "arrive"}, "ticket-T1"),
    ("/complaints/C2/steps/reply", {"case_id": "C2", "step": "reply"}, "complaint-C2"),
    ("/returns/R3", {"case_id": "R3"}, "return-R3"),
    ("/plans/K4/visits", {"contract_id": "K4"}, "plan-K4"),
    ("/tickets", {}, None),
])
def test_the_case_of_a_request_is_its_workflow_id(path, params, case):
    assert logs.case_of_path(path, params) == case


def test_log_format_setting_is_checked_at_start(monkeypatch):
    from activities.settings import ConfigError, load

    monkeypatch.setenv("WEIBAO_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="WEIBAO_LOG_FORMAT: must be auto, json or text"):
        load()
