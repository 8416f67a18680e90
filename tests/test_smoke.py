from workflows.ticket import TicketWorkflow
from tests.conftest import dispatch, hours, report, step


async def test_critical_zone_a_smoke(env, worker, stack):
    handle, state = await report(env.client, worker)
    assert state.status == "reported"
    await dispatch(handle)
    await env.sleep(hours(4) + hours(0.01))
    s = await handle.query(TicketWorkflow.current)
    print(s)
    assert len(s.breaches) == 1
