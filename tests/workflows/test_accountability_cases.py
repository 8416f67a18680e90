"""Issue 5's facts in the department accountability report: a substantiated complaint
and an attributed return/exchange cause count against the department and person named
(§九.C.7, §九.D.4), driven through the real workflows and caught up by the runner."""
from activities.store import open_store
from domain.policy import CST
from projections.departments import DepartmentAccountability, department_accountability
from projections.runner import ReadModels, Runner
from tests.case_helpers import INSPECTED, ComplaintWorkflow, ReturnWorkflow, register_complaint, request_return, step


async def test_a_substantiated_complaint_and_an_attributed_return_cause_show_in_department_accountability(
        env, worker, stack):
    complaint, c = await register_complaint(env.client, worker, category="service_attitude", about_person="E002")
    await step(complaint, ComplaintWorkflow, "acknowledge", "S002")
    replied = await step(complaint, ComplaintWorkflow, "reply", "S002", reply="apologised; retrained the engineer",
                         substantiated=True)
    today = (await env.get_current_time()).astimezone(CST).date()
    ret, r = await request_return(env.client, worker, delivery_date=today)
    await step(ret, ReturnWorkflow, "approve", "M002", approved=True)
    await step(ret, ReturnWorkflow, "inspect", "M003", **INSPECTED)  # cause: rnd, M003
    # an unsubstantiated complaint counts against nobody
    other, _ = await register_complaint(env.client, worker, category="installation", about_person="E002")
    await step(other, ComplaintWorkflow, "acknowledge", "S002")
    await step(other, ComplaintWorkflow, "reply", "S002", reply="worked as specified", substantiated=False)

    models = ReadModels()
    runner = Runner(open_store(), models, names=[DepartmentAccountability.name])
    assert runner.catch_up() > 0
    rows = {row["department"]: row for row in department_accountability(
        models.view(DepartmentAccountability.name), today.strftime("%Y-%m"))}
    models.close()

    project = rows[replied.responsible_department]
    assert project["substantiated_complaints"] == 1 and project["return_causes"] == 0
    assert [(p["person"], p["substantiated_complaints"]) for p in project["people"]] == [
        (replied.responsible_person, 1)]
    assert project["events"]  # traceable to the complaint's events
    rnd = rows["rnd"]
    assert rnd["return_causes"] == 1 and rnd["substantiated_complaints"] == 0
    assert [(p["person"], p["return_causes"]) for p in rnd["people"]] == [("M003", 1)]
