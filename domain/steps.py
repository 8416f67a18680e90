"""What each step of a fault ticket carries (报障 / 维修派工单), as pydantic models.

The same models validate the HTTP body, the workflow Update and the recorded event
data, so a malformed step is refused before anything is recorded."""
from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from domain.policy import Severity, Zone
from domain.text import Line, Lines


class Payload(BaseModel):
    """Text fields are `Line` or `Lines` (domain.text: no control characters); a boolean
    is JSON true/false and a count or rating a JSON integer, never a string."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Text = Field(min_length=1, max_length=2000)


class ReportTicket(Payload):
    """报障: registered by the intake clerk (§九.E.6)."""

    customer: Line = Field(min_length=1, max_length=200)
    site: Line = Field(min_length=1, max_length=500, description="site address")
    contact_phone: str = Field(min_length=3, max_length=40, pattern=r"^[0-9+()\- ]+$")
    product_model: Line = Field(min_length=1, max_length=200)
    symptoms: Lines = Text
    channel: Literal["phone", "email", "letter", "visit", "remote_monitoring"]
    severity: Severity = Severity.general
    zone: Zone = Zone.A
    confidential_notes: Lines | None = Field(
                                             default=None, max_length=2000,
                                             description="credentials or core parameters (§四.5); masked for auditors",
                                             )


class Triage(Payload):
    """初步评价故障 (§九.E.7): severity, zone and service category (§九.E.3)."""

    severity: Severity
    zone: Zone
    service_category: Literal["free", "paid", "contract"] = "free"
    note: Lines | None = Field(default=None, max_length=2000)


class Dispatch(Payload):
    """派工: a suitable engineer; urgent cases may travel fast (§九.A.5)."""

    engineer: Line = Field(min_length=1, max_length=64)
    travel_mode: Literal[
        "company_car", "taxi", "high_speed_rail", "plane", "public_transport", "remote_only"
    ] = "company_car"


class Arrive(Payload):
    """到场: the engineer shows a staff ID to enter (§九.E.8)."""

    staff_id_shown: StrictBool

    @field_validator("staff_id_shown")
    @classmethod
    def _must_show(cls, v: bool) -> bool:
        if not v:
            raise ValueError("the engineer must show a staff ID to enter the site (§九.E.8)")
        return v


class StartRemote(Payload):
    """远程维护: only with the customer's consent (§八.11, §十.2.C.1)."""

    customer_consent: StrictBool
    consent_by: Line = Field(min_length=1, max_length=200)

    @field_validator("customer_consent")
    @classmethod
    def _must_consent(cls, v: bool) -> bool:
        if not v:
            raise ValueError("a remote session needs the customer's consent (§八.11)")
        return v


class QuoteFee(Payload):
    """有偿服务: the fee schedule is shown before work (§九.E.12)."""

    amount_yuan: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    items: list[Line] = Field(min_length=1, max_length=50)


class AcceptFee(Payload):
    accepted_by: Line = Field(min_length=1, max_length=200)


class TakeBack(Payload):
    """带回修复: a receipt is issued and the goods book written (§九.E.11)."""

    receipt_no: Line = Field(min_length=1, max_length=64)
    items: list[Line] = Field(min_length=1, max_length=50)


class ReturnEquipment(Payload):
    """修复后归还: the receipt is taken back (§九.E.11)."""

    receipt_no: Line = Field(min_length=1, max_length=64)


class ProvideBackup(Payload):
    """保修期间提供备用机 (§九.A.4)."""

    unit: Line = Field(min_length=1, max_length=200)


class RetrieveBackup(Payload):
    unit: Line = Field(min_length=1, max_length=200)


class Resolve(Payload):
    """处理结果: goes to the fault register (§八.12)."""

    cause: Lines = Text
    resolution: Lines = Text
    parts_used: list[Line] = Field(default_factory=list, max_length=100)
    difficult: StrictBool = Field(default=False, description="a rare fault: write a summary (§八.6)")
    summary: Lines | None = Field(default=None, max_length=10000)


class SignOff(Payload):
    """客户签字 and opinion (§九.A.2, §九.E.11)."""

    signature: Line = Field(min_length=1, max_length=200)
    satisfaction: StrictInt = Field(ge=1, le=5)
    opinion: Lines = Field(default="", max_length=2000)
    entered_by: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="the staff id of whoever typed it in for a customer without a phone; none when the customer "
                    "signed on their own device (the event's actor is then customer:<name>)")


class Close(Payload):
    """主管考核维保时间和质量 (§九.E.13)."""

    time_rating: StrictInt = Field(ge=1, le=5)
    quality_rating: StrictInt = Field(ge=1, le=5)
    comment: Lines = Field(default="", max_length=2000)


# step name (as in the API path) -> (event type recorded, payload model)
STEPS: dict[str, tuple[str, type[Payload]]] = {
    "triage": ("Triaged", Triage),
    "dispatch": ("Dispatched", Dispatch),
    "arrive": ("ArrivedOnSite", Arrive),
    "start-remote": ("RemoteSessionStarted", StartRemote),
    "quote-fee": ("FeeQuoted", QuoteFee),
    "accept-fee": ("FeeAccepted", AcceptFee),
    "take-back": ("EquipmentTakenBack", TakeBack),
    "return-equipment": ("EquipmentReturned", ReturnEquipment),
    "provide-backup": ("BackupUnitProvided", ProvideBackup),
    "retrieve-backup": ("BackupUnitRetrieved", RetrieveBackup),
    "resolve": ("Resolved", Resolve),
    "sign-off": ("SignedOff", SignOff),
    "close": ("Closed", Close),
}


def parse_step(step: str, data: dict) -> dict:
    """Validate a step's data; returns it JSON-ready. Raises KeyError for an unknown
    step and pydantic.ValidationError for bad data."""
    _, model = STEPS[step]
    return model.model_validate(data).model_dump(mode="json")
