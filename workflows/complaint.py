"""ComplaintWorkflow: one customer opinion or complaint (§九.C) from registration to
the customer's satisfaction.

- Registration (an Update sent with the start) routes it by category: product quality
  or functionality to R&D, the rest to the project department; an emergency notifies
  company leadership at once (§九.C.2).
- Windows from registration (domain.complaint_rules.WINDOWS): acknowledged within 2 h,
  replied within 24 h. At 75 % the handler is warned; at the deadline the breach
  escalates to the direct superior of the person complained about (the head of the
  department complained about when no person is named); half a window later, to
  company leadership.
- `escalate`: the customer goes to that superior or straight to leadership (§九.C.3);
  the complaint moves up at once, and a timer does not repeat a level already reached."""
from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import complaint_rules
    from domain.complaint_rules import LEVELS, ROUTES, STEPS, ComplaintState, registration_data
    from activities.record import TargetRequest
    from workflows.case_messages import CaseStart, RegisterCommand, StepCommand
    from workflows.casework import SYSTEM, CaseWorkflow, bad_field, parse, reject_illegal, windows

from temporalio.exceptions import ApplicationError


def complaint_workflow_id(complaint_id: str) -> str:
    return f"complaint-{complaint_id}"


@workflow.defn(name="Complaint")
class ComplaintWorkflow(CaseWorkflow):
    KIND = "complaint"
    fold = staticmethod(complaint_rules.evolve)
    state: ComplaintState

    @workflow.init
    def __init__(self, start: CaseStart) -> None:
        self._setup(ComplaintState(case_id=start.case_id), start.code)
        self.windows = windows(start.windows, complaint_rules.WINDOWS)

    @workflow.run
    async def run(self, start: CaseStart) -> ComplaintState:
        if not await self._opened():
            return self.state
        await self._watch(lambda: self.state.status == "closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    @workflow.query
    def current(self) -> ComplaintState:
        return self.state

    @workflow.update
    async def register(self, cmd: RegisterCommand) -> ComplaintState:
        with self._opening():
            async with self.lock:
                self._reject_if_registered()
                c = cmd.complaint
                routed_kind = ROUTES[c.category]
                org = await self._lookup(staff=[c.about_person], departments=[c.about_department], kinds=[routed_kind])
                if c.about_person and c.about_person not in org["staff"]:
                    raise bad_field("about_person", f"{c.about_person!r} is not on the staff")
                if c.about_department and c.about_department not in org["departments"]:
                    raise bad_field("about_department", f"{c.about_department!r} is not a department")
                routed = org["kinds"].get(routed_kind)
                if routed is None:
                    raise ApplicationError(f"the org file has no {routed_kind} department to route a "
                                           f"{c.category} complaint to", type="NoDepartment")
                about_head = self._about_head(c.about_person, c.about_department, org, routed)
                data = registration_data(c.model_dump(mode="json"), routed, about_head, workflow.now(), self.windows)
                await self._record("Registered", data, cmd.actor, "register")
                if c.emergency:  # 紧急事件应及时上报 (§九.C.2)
                    target = await self._target(self._line(None, 2))
                    reason = f"emergency complaint from {c.customer}: {c.description[:200]}"
                    await self._record("LeadershipNotified", {"to": target["id"], "to_name": target["name"],
                                                              "reason": reason}, SYSTEM, "emergency")
                    await self._notify("emergency", target, "LeadershipNotified", reason, level=2)
            return self.state

    @register.validator
    def _validate_register(self, cmd: RegisterCommand) -> None:
        self._reject_if_registered()

    def _reject_if_registered(self) -> None:
        if self.state.status != "new":
            raise ApplicationError(f"complaint {self.state.case_id} is already registered",
                                   {"status": self.state.status, "step": "register"}, type="IllegalStep")

    @staticmethod
    def _about_head(person: str | None, department: str | None, org: dict, routed: dict) -> str | None:
        """The head of the department complained about: named, else the person's, else the handling one."""
        dep = department or (org["staff"][person]["department"] if person else None)
        info = org["departments"].get(dep) if dep else None
        return (info or routed).get("head")

    @workflow.update
    async def step(self, cmd: StepCommand) -> ComplaintState:
        data = parse(STEPS, cmd.step, cmd.data)
        async with self.lock:
            reject_illegal(complaint_rules.check, self.state, cmd.step, data)
            key = f"step:{workflow.current_update_info().id}"
            event_type = STEPS[cmd.step][0]
            if cmd.step == "acknowledge":
                data["handler"] = data.get("handler") or cmd.actor
                await self._require(staff={"handler": data["handler"]})
            elif cmd.step == "reply":  # attributed to the people and departments involved (§九.C.7)
                person = data["responsible_person"] = complaint_rules.reply_person(self.state, data)
                org = await self._require(staff={"responsible_person": person},
                                          departments={"responsible_department": data.get("responsible_department")})
                data["responsible_department"] = complaint_rules.reply_department(
                    self.state, data, org["staff"].get(person or "", {}).get("department"))
            elif cmd.step == "escalate":
                level = LEVELS[data["to"]]
                target = await self._target(self._line(None, level))
                data.update(level=level, to_staff=target["id"], to_name=target["name"],
                            responsible=self.state.about_person or self.state.about_head)
                await self._record(event_type, data, cmd.actor, key, cmd.step)
                await self._notify(key, target, event_type, f"the customer asked for the {data['to']}: "
                                                            f"{data['reason']}", level=level,
                                   responsible=data["responsible"])
                return self.state
            await self._record(event_type, data, cmd.actor, key, cmd.step)
        return self.state

    @step.validator
    def _validate_step(self, cmd: StepCommand) -> None:
        reject_illegal(complaint_rules.check, self.state, cmd.step, parse(STEPS, cmd.step, cmd.data))

    def _line(self, alarm, level: int) -> TargetRequest:
        """0: the handler (or the handling department's head); 1: the direct superior of
        the person complained about, or of the head of the department complained about,
        climbing until someone of the department handling the complaint, never anyone it
        is about; 2: company leadership."""
        s = self.state
        if level == 0:
            return TargetRequest(responsible=s.answerable, level=0, kind=self.KIND, department=s.routed_to)
        about = [p for p in (s.about_person, s.about_head if s.about_department else None) if p]
        return TargetRequest(responsible=s.about_person or s.about_head, level=level, kind=self.KIND,
                             department=s.routed_to, about=about)
