"""No input produces a server error: schemathesis generates requests, valid and
invalid, for every operation of /openapi.json and sends them to the served API (a
real worker behind it); every answer must be below 500, and every 4xx the JSON
error shape."""
from __future__ import annotations

import asyncio
import json

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from tests.api_fixtures import Api, api, served  # noqa: F401 - fixture

EXAMPLES = 30


def fuzz(base: str, ticket_id: str, tokens: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    problems: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        primary = "C001" if (op.method.upper(), op.path) == ("POST", "/tickets") else "S001"
        cases = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=cases, aim=st.booleans(), who=st.sampled_from([primary, primary, "A001", "E001", None]))
        def check(case, aim: bool, who: str | None) -> None:
            if aim and case.path_parameters and "ticket_id" in case.path_parameters:
                case.path_parameters["ticket_id"] = ticket_id  # steps and reads of a real ticket
            headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
            if case.headers and "Authorization" in case.headers:
                del case.headers["Authorization"]
            response = case.call(base_url=base, headers=headers, timeout=60)
            case.validate_response(response, checks=[not_a_server_error])
            if 400 <= response.status_code < 500:
                body = response.json()
                if set(body) != {"error", "detail", "field"}:
                    problems.append(f"{op.method} {op.path} {response.status_code}: {json.dumps(body)[:200]}")

        check()
    return problems


async def test_no_generated_request_gets_a_server_error_and_every_4xx_has_the_error_shape(api: Api):
    tid = await api.report()
    tokens = {who: api.token(who) for who in ("C001", "S001", "A001", "E001")}
    async with served(create_app(api.services)) as base:
        problems = await asyncio.to_thread(fuzz, base, tid, tokens)
    assert not problems, problems[:10]
