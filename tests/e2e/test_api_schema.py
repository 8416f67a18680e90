"""No input produces a server error: schemathesis generates requests, valid and
invalid, for every operation of /openapi.json and sends them to the served API (a
real worker behind it), on SQLite and on PostgreSQL (which refuses a NUL in text
outright). Two in three are roughened first: one value of the body or query
becomes a control character, a huge number or a very long text.
Every query parameter of every operation is also swept alone with NUL, dates at the
calendar's ends, huge numbers and long texts. Every answer must be below 500, every 4xx
the JSON error shape, and a 422 lists each problem in `errors`, the first being `field`."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from api.app import create_app
from tests.api_fixtures import api_stack, served

EXAMPLES = 30
SHAPE = {"error", "detail", "field"}
# what a careless client or a hostile one sends
NASTY_TEXT = ["\x00", "Nul\x00Hosp", "\x07", "\x1b[31mred", "\x7f", "\u0085", "\u202eevil", "a\r\nb",
              "\U0001d54f" * 500, "x" * 100_000, "9" * 5000]
NASTY_BODY_ONLY = ["x" * (2 << 20)]  # over the body limit (a lone surrogate: tests/e2e/test_bad_input.py)
NASTY_NUMBERS = [10 ** 30, -10 ** 30, 2 ** 63, 2 ** 64, 1e308, -1e308, int("9" * 4000), 0.1 ** 320]


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _put(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    value[path[0]] = _put(value[path[0]], path[1:], new)
    return value


def roughen(case, query: list[str], pick: int, nasty: Any) -> None:
    """Put `nasty` in one leaf of the body or in one of the operation's query parameters
    (chosen by `pick`), whether the generated case gave that parameter or not."""
    targets = [("body", p) for p in _leaves(case.body)] if isinstance(case.body, (dict, list)) else []
    if nasty not in NASTY_BODY_ONLY:
        targets += [("query", (name,)) for name in query]
    if not targets:
        return
    where, path = targets[pick % len(targets)]
    if where == "body":
        case.body = _put(case.body, path, nasty)
    else:
        case.query = {**(case.query or {}), path[0]: str(nasty)}


# every query parameter of every operation gets each of these
SWEEP = ["Nul\x00Hosp", "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
         "9" * 5000, "x" * 8000]


def sweep(schema, base: str, ticket_id: str, tokens: dict[str, str]) -> list[str]:
    """Deterministically, each query parameter alone with each SWEEP value, as a manager:
    any 5xx is a problem."""
    problems: list[str] = []
    manager = {"Authorization": f"Bearer {tokens['M001']}"}  # reads everything
    for result in schema.get_all_operations():
        op = result.ok()
        path = {p.name: ticket_id if p.name == "ticket_id" else "x1" for p in op.path_parameters}
        for param in op.query:
            for value in SWEEP:
                case = op.Case(path_parameters=path, query={param.name: value})
                response = case.call(base_url=base, headers=manager, timeout=60)
                if response.status_code >= 500:
                    problems.append(f"{op.method} {op.path}?{param.name}={value[:30]!r}: {response.status_code}")
    return problems


def fuzz(base: str, ticket_id: str, tokens: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    problems: list[str] = sweep(schema, base, ticket_id, tokens)
    nasty = st.sampled_from(NASTY_TEXT + NASTY_BODY_ONLY + NASTY_NUMBERS)
    for result in schema.get_all_operations():
        op = result.ok()
        primary = "C001" if (op.method.upper(), op.path) == ("POST", "/tickets") else \
            "M001" if op.path.startswith(("/reports", "/knowledge")) else "S001"
        query = [p.name for p in op.query]
        cases = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=cases, aim=st.booleans(), who=st.sampled_from([primary, primary, "A001", "E001", None]),
               rough=st.sampled_from([None, 1, 2]).flatmap(
                   lambda r: st.none() if r is None else st.tuples(st.integers(0, 1000), nasty)))
        def check(case, aim: bool, who: str | None, rough) -> None:
            if aim and case.path_parameters and "ticket_id" in case.path_parameters:
                case.path_parameters["ticket_id"] = ticket_id  # steps and reads of a real ticket
            if rough is not None:
                roughen(case, query, *rough)
            headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
            if case.headers and "Authorization" in case.headers:
                del case.headers["Authorization"]
            response = case.call(base_url=base, headers=headers, timeout=60)
            case.validate_response(response, checks=[not_a_server_error])
            if 400 <= response.status_code < 500:
                try:
                    body = response.json()
                except ValueError:
                    problems.append(f"{op.method} {op.path} {response.status_code}: not JSON: {response.text[:200]}")
                    return
                each = body.get("errors")
                if not SHAPE <= set(body) <= SHAPE | {"errors"} or (response.status_code == 422) != (each is not None) \
                        or (each is not None and (not each or each[0]["field"] != body["field"])):
                    problems.append(f"{op.method} {op.path} {response.status_code}: {json.dumps(body)[:200]}")

        check()
    return problems


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_no_generated_or_roughened_request_gets_a_server_error_and_every_4xx_has_the_error_shape(
        env, org, use_store, kind):
    async with api_stack(env, org, kind, use_store) as api:
        tid = await api.report()
        tokens = {who: api.token(who) for who in ("C001", "S001", "M001", "A001", "E001")}
        async with served(create_app(api.services)) as base:
            problems = await asyncio.to_thread(fuzz, base, tid, tokens)
    assert not problems, problems[:10]
