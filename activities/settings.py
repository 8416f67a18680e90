"""The configuration: every environment variable a weibao process reads, with its default
and its check, in one pydantic-settings class (the README's "Configuration" table).

`load()` reads the environment as it is at the call (a changed variable is seen by the
next call; an unchanged environment costs a dictionary look-up). `startup()` is what
each process runs first: it checks the variables, the org file, the rules file and the
Temporal client configuration, and on a problem prints one line naming the variable or
file and exits with status 2."""
from __future__ import annotations

import logging
import os
import re
import sys
import tomllib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.org import EMAIL, Org, OrgError

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("WEIBAO_", "POSTGRES_", "TEMPORAL_")  # the variables a Settings depends on
UVICORN_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
SMTP_SECURITY = {"none": 25, "starttls": 587, "tls": 465}  # WEIBAO_SMTP_SECURITY -> default port
ROBOT_DEPARTMENT = re.compile(r"\*|[A-Za-z0-9_.-]+")
ROBOT_KEY = re.compile(r"[A-Za-z0-9_.+/=-]+")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message (one line) names the variable or
    file and the problem."""


def _tls_flag(value: Any) -> Any:
    # temporalio.envconfig takes only these; anything else ('yes', 'off') would silently
    # leave TLS on, so it is refused here
    if isinstance(value, str):
        if value.lower() in ("1", "true"):
            return True
        if value.lower() in ("0", "false"):
            return False
        raise ValueError(f"must be true or false (or 1 or 0), not {value!r}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """A duration written as a number and a unit s, m, h or d ("30s", "5m", "2h", "7d")."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration above zero such as 30s, 5m, 2h or 7d")
    return timedelta(seconds=float(m.group(1)) * _SECONDS[m.group(2)])


class Settings(BaseSettings):
    """The process configuration. A field named `x` reads WEIBAO_X, unless it names its
    variable (TEMPORAL_*, POSTGRES_*)."""

    model_config = SettingsConfigDict(env_prefix="WEIBAO_", env_ignore_empty=True, extra="ignore", frozen=True)

    # Temporal (temporalio.envconfig reads these too when connecting: see temporal_client_config)
    temporal_address: str = Field("localhost:7233", validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_api_key: SecretStr | None = Field(None, validation_alias="TEMPORAL_API_KEY")
    temporal_tls: bool | None = Field(None, validation_alias="TEMPORAL_TLS")
    temporal_tls_server_name: str | None = Field(None, validation_alias="TEMPORAL_TLS_SERVER_NAME")
    temporal_tls_server_ca_cert_path: Path | None = Field(None, validation_alias="TEMPORAL_TLS_SERVER_CA_CERT_PATH")
    temporal_tls_client_cert_path: Path | None = Field(None, validation_alias="TEMPORAL_TLS_CLIENT_CERT_PATH")
    temporal_tls_client_key_path: Path | None = Field(None, validation_alias="TEMPORAL_TLS_CLIENT_KEY_PATH")
    temporal_profile: str | None = Field(None, validation_alias="TEMPORAL_PROFILE")
    temporal_config_file: Path | None = Field(None, validation_alias="TEMPORAL_CONFIG_FILE")
    task_queue: str = "weibao"
    worker_threads: int = Field(16, ge=1, le=512)  # activity threads = activity and local-activity slots
    worker_cache: int = Field(10_000, ge=0, le=1_000_000)  # open cases kept in a worker's memory
    delivery_slots: int = Field(8, ge=1, le=1024)  # sends at once per worker process, on the delivery worker
    workflow_sandbox: bool = False  # run the workflows in the SDK's sandbox (worker.workflow_runner)
    temporal_ui_port: int = 8233

    # event store
    data_dir: Path = ROOT / ".weibao"
    event_store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path | None = None  # None: $WEIBAO_DATA_DIR/events.db (filled in below)
    postgres_host: str = Field("127.0.0.1", validation_alias="POSTGRES_HOST")
    postgres_port: int = Field(5432, validation_alias="POSTGRES_PORT")
    postgres_dbname: str = Field("postgres", validation_alias="POSTGRES_DBNAME")
    postgres_user: str = Field("postgres", validation_alias="POSTGRES_USER")
    postgres_password: SecretStr = Field(SecretStr(""), validation_alias="POSTGRES_PASSWORD")

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_log_level: str = "info"
    api_access_log: bool = True
    idempotency_ttl: str = "7d"  # how long an Idempotency-Key and its answer are kept (api/idempotency.py)
    api_max_body: int = 1 << 20  # bytes of a request body; a larger one is answered 413

    # the organisation and the rules
    org_file: Path = ROOT / "org.example.toml"
    complaint_windows: str = ""
    return_windows: str = ""
    inspection_windows: str = ""
    rules_file: Path | None = None

    # projection runner
    projection_batch: int | None = None
    projection_workers: int | None = None
    projection_processes: int = 1
    projection_poll: float = 1.0
    log_level: str = "INFO"

    # operations (activities/telemetry.py, activities/logs.py): metrics and health ports, log lines
    metrics_host: str = "127.0.0.1"  # where the worker's and the runner's metrics and health listen
    worker_metrics_port: int = 9464  # 0: none
    projection_metrics_port: int = 9465  # 0: none; with n runner processes, this port to port + n - 1
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: JSON lines unless stderr is a terminal

    # notifications: where warnings and escalations are sent (activities/deliver.py)
    public_url: str | None = None  # the base of acknowledgement links; None: http://api_host:api_port
    smtp_host: str | None = None  # None: no email
    smtp_port: int | None = None  # None: 25, 587 or 465 by smtp_security
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_from: str | None = Field(None, validate_default=True)
    wecom_robots: SecretStr = SecretStr("")  # department=KEY,...
    dingtalk_robots: SecretStr = SecretStr("")  # department=TOKEN[:SECRET],...
    wecom_url: str = "https://qyapi.weixin.qq.com"
    dingtalk_url: str = "https://oapi.dingtalk.com"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(None, validate_default=True)
    notify_timeout: float = 10.0
    # delivery's retry budget and acknowledgement (workflows/delivery.py): durations as 30s, 5m, 2h, 7d
    secret_key: SecretStr | None = None  # signs links; None: one made once in $WEIBAO_DATA_DIR/secret_key
    delivery_attempts: int = Field(12, ge=1, le=100)
    delivery_first_retry: str = "30s"
    delivery_longest_retry: str = "30m"
    ack_within: str = "30m"
    ack_link_ttl: str = "7d"
    # the console (api/console): how long a sign-in link, a session and a customer's sign-off link last
    login_link_ttl: str = "15m"
    console_session_ttl: str = "12h"
    signoff_link_ttl: str = "24h"

    # --- checks (each message says what is wanted and what was given) ----------------------

    @field_validator("delivery_first_retry", "delivery_longest_retry", "ack_within", "ack_link_ttl",
                     "idempotency_ttl")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        duration(str(v))
        return v

    @field_validator("event_store", mode="before")
    @classmethod
    def _store(cls, v: Any) -> Any:
        if v not in ("sqlite", "postgres"):
            raise ValueError(f"must be 'sqlite' or 'postgres', not {v!r}")
        return v

    @field_validator("temporal_address", mode="before")
    @classmethod
    def _address(cls, v: Any) -> Any:
        host, _, port = str(v).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port, not {v!r}")
        return v

    @field_validator("temporal_namespace", "task_queue", "postgres_host", "postgres_dbname", "postgres_user",
                     "api_host", "metrics_host", mode="before")
    @classmethod
    def _not_blank(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("temporal_tls", mode="before")
    @classmethod
    def _tls(cls, v: Any) -> Any:
        return _tls_flag(v)

    @field_validator("temporal_ui_port", "postgres_port", "api_port", mode="before")
    @classmethod
    def _port(cls, v: Any) -> Any:
        if isinstance(v, str) and not (v.strip().isdigit() and 0 < int(v) < 65536):
            raise ValueError(f"must be a port number (1-65535), not {v!r}")
        return v

    @field_validator("worker_metrics_port", "projection_metrics_port", mode="before")
    @classmethod
    def _port_or_none(cls, v: Any) -> Any:
        if isinstance(v, str) and not (v.strip().isdigit() and 0 <= int(v) < 65536):
            raise ValueError(f"must be a port number (1-65535), or 0 for none, not {v!r}")
        return v

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, v: Any) -> Any:
        if str(v).lower() not in ("auto", "json", "text"):
            raise ValueError(f"must be auto, json or text, not {v!r}")
        return str(v).lower()

    @field_validator("projection_batch", "projection_workers", "projection_processes", "api_max_body", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        if isinstance(v, str) and not (v.strip().isdigit() and int(v) > 0):
            raise ValueError(f"must be a whole number above 0, not {v!r}")
        return v

    @field_validator("projection_poll", mode="before")
    @classmethod
    def _seconds(cls, v: Any) -> Any:
        try:
            ok = float(v) > 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"must be a number of seconds above 0, not {v!r}")
        return v

    @field_validator("api_log_level", mode="before")
    @classmethod
    def _uvicorn_level(cls, v: Any) -> Any:
        if str(v).lower() not in UVICORN_LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(UVICORN_LOG_LEVELS)}, not {v!r}")
        return str(v).lower()

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, v: Any) -> Any:
        names = [n for n in logging.getLevelNamesMapping() if n not in ("NOTSET", "WARN", "FATAL")]
        if str(v).upper() not in names:
            raise ValueError(f"must be one of {', '.join(names)}, not {v!r}")
        return str(v).upper()

    @field_validator("api_access_log", mode="before")
    @classmethod
    def _switch(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.lower() in TRUE:
                return True
            if v.lower() in FALSE:
                return False
            raise ValueError(f"must be one of {', '.join(TRUE + FALSE)}, not {v!r}")
        return v

    @field_validator("complaint_windows", "return_windows", "inspection_windows")
    @classmethod
    def _windows(cls, v: str, info: ValidationInfo) -> str:
        from domain.casework import parse_windows

        parse_windows(v, window_table(info.field_name.removesuffix("_windows")))
        return v

    @field_validator("temporal_tls_server_ca_cert_path", "temporal_tls_client_cert_path",
                     "temporal_tls_client_key_path", "temporal_config_file")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v

    # --- notification checks (secrets are never echoed) -------------------------------------

    @field_validator("smtp_port", mode="before")
    @classmethod
    def _smtp_port(cls, v: Any) -> Any:
        return cls._port(v)

    @field_validator("notify_timeout", mode="before")
    @classmethod
    def _notify_timeout(cls, v: Any) -> Any:
        return cls._seconds(v)

    @field_validator("smtp_host", "smtp_user", mode="before")
    @classmethod
    def _no_blank(cls, v: Any) -> Any:
        return cls._not_blank(v)

    @field_validator("smtp_security", mode="before")
    @classmethod
    def _smtp_security(cls, v: Any) -> Any:
        if str(v).lower() not in SMTP_SECURITY:
            raise ValueError(f"must be one of {', '.join(SMTP_SECURITY)}, not {v!r}")
        return str(v).lower()

    @field_validator("public_url", "wecom_url", "dingtalk_url", "webhook_url")
    @classmethod
    def _http_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = "" if info.field_name == "webhook_url" else f", not {v!r}"  # it may hold a token
            raise ValueError(f"must be an http:// or https:// URL{shown}")
        return v.rstrip("/")

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            if info.data.get("smtp_host"):
                raise ValueError("must be set when WEIBAO_SMTP_HOST is (the sender's address)")
            return v
        if not EMAIL.fullmatch(v.strip()):
            raise ValueError(f"must be an email address, not {v!r}")
        return v.strip()

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if v is None and info.data.get("webhook_url"):
            raise ValueError("must be set when WEIBAO_WEBHOOK_URL is (every body is signed with it)")
        return v

    @field_validator("wecom_robots", "dingtalk_robots")
    @classmethod
    def _robots(cls, v: SecretStr, info: ValidationInfo) -> SecretStr:
        parse_robots(v.get_secret_value(), signed=info.field_name == "dingtalk_robots")
        return v

    @model_validator(mode="after")
    def _public_url(self) -> "Settings":
        if self.public_url is None:  # frozen: set once, while being validated
            object.__setattr__(self, "public_url", f"http://{self.api_host}:{self.api_port}")
        return self

    @model_validator(mode="after")
    def _derived(self) -> "Settings":
        if self.sqlite_path is None:  # frozen: set once, while being validated
            object.__setattr__(self, "sqlite_path", self.data_dir / "events.db")
        return self

    # --- reading ----------------------------------------------------------------------------

    def windows(self, kind: str) -> dict[str, timedelta] | None:
        """The window overrides of kind 'complaint', 'return' or 'inspection' (None: the
        table as it is)."""
        from domain.casework import parse_windows

        text = getattr(self, f"{kind}_windows")
        return parse_windows(text, window_table(kind)) if text else None

    def postgres(self) -> dict[str, str]:
        return {"POSTGRES_HOST": self.postgres_host, "POSTGRES_PORT": str(self.postgres_port),
                "POSTGRES_DBNAME": self.postgres_dbname, "POSTGRES_USER": self.postgres_user,
                "POSTGRES_PASSWORD": self.postgres_password.get_secret_value()}

    def smtp_port_or_default(self) -> int:
        return self.smtp_port or SMTP_SECURITY[self.smtp_security]

    def robot(self, channel: str, department: str) -> tuple[str, str | None] | None:
        """The group robot that posts for `department` on `channel` ('wecom': its webhook key;
        'dingtalk': its access token and signing secret, or None), the '*' robot for a
        department without its own; None when there is none."""
        field = {"wecom": self.wecom_robots, "dingtalk": self.dingtalk_robots}[channel]
        robots = parse_robots(field.get_secret_value(), signed=channel == "dingtalk")
        return robots.get(department) or robots.get("*")

    def robot_departments(self, channel: str) -> list[str]:
        field = {"wecom": self.wecom_robots, "dingtalk": self.dingtalk_robots}[channel]
        return list(parse_robots(field.get_secret_value(), signed=channel == "dingtalk"))

    def text(self, variable: str) -> str | None:
        """The value of environment variable `variable` as a string, after its check and
        with its default (None: no default); KeyError if it is not a setting."""
        value = getattr(self, FIELDS[variable.upper()])
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value)


def parse_robots(text: str, signed: bool) -> dict[str, tuple[str, str | None]]:
    """'department=KEY,...' (WeCom) or 'department=TOKEN[:SECRET],...' (DingTalk, `signed`)
    as {department: (key or token, signing secret or None)}; '*' is the robot of every
    department without its own. ValueError naming the entry by its place, never its key."""
    robots: dict[str, tuple[str, str | None]] = {}
    entries = [e.strip() for e in text.split(",") if e.strip()]
    wanted = "department=TOKEN or department=TOKEN:SECRET" if signed else "department=KEY"
    for n, entry in enumerate(entries, 1):
        department, eq, credential = (part.strip() for part in entry.partition("="))
        token, _, secret = credential.partition(":") if signed else (credential, "", "")
        if not eq or not ROBOT_DEPARTMENT.fullmatch(department) or not ROBOT_KEY.fullmatch(token) \
                or (secret and not ROBOT_KEY.fullmatch(secret)):
            raise ValueError(f"entry {n} of {len(entries)} is not {wanted}")
        if department in robots:
            raise ValueError(f"department {department!r} has two robots")
        robots[department] = (token, secret or None)
    return robots


def check_notifications(settings: Settings, org: Org) -> None:
    """A robot configured for a department that the org file does not have is a typo:
    refused at start rather than silently never used."""
    for channel, name in (("wecom", "WEIBAO_WECOM_ROBOTS"), ("dingtalk", "WEIBAO_DINGTALK_ROBOTS")):
        for department in settings.robot_departments(channel):
            if department != "*" and department not in org.departments:
                raise ConfigError(f"{name}: unknown department {department!r}; the org file has "
                                  f"{', '.join(org.departments)} (or '*' for every other)")


def window_table(kind: str) -> dict[str, timedelta]:
    """The built-in windows that WEIBAO_<KIND>_WINDOWS overrides."""
    if kind == "complaint":
        from domain.complaint_rules import WINDOWS
        return dict(WINDOWS)
    if kind == "return":
        from domain.return_rules import HANDOFFS
        return {goal: window for goal, (_, window) in HANDOFFS.items()}
    if kind == "inspection":
        from domain.inspection_rules import WINDOWS
        return dict(WINDOWS)
    raise KeyError(kind)


def variable(field: str) -> str:
    """The environment variable of a Settings field."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"WEIBAO_{field.upper()}"


FIELDS = {variable(f): f for f in Settings.model_fields}  # variable -> field
VARIABLES = tuple(FIELDS)


def _one_line(text: object) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _explain(e: ValidationError) -> str:
    problems = []
    for err in e.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        name = variable(name) if name in Settings.model_fields else name.upper()
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {_one_line(msg)}")
    return "; ".join(problems)


def load() -> Settings:
    """The settings of the environment as it is now; ConfigError (one line) if a variable
    is bad."""
    return _load(tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(PREFIXES))))


@lru_cache(maxsize=16)
def _load(_environment: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        raise ConfigError(_explain(e)) from None


def read_org(path: Path) -> Org:
    """The org file at `path`; OrgError (one line naming the file) if it is missing or broken."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise OrgError(f"{path}: cannot be read: {e.strerror or e} (WEIBAO_ORG_FILE)") from None
    except UnicodeDecodeError as e:
        raise OrgError(f"{path}: not UTF-8 text: {e.reason}") from None
    return Org.from_toml(text, source=str(path))


def check_rules_file(settings: Settings) -> None:
    """The rules file of WEIBAO_RULES_FILE, if any, must be readable TOML with usable rules."""
    path = settings.rules_file
    if path is None:
        return
    from projections.rules import RuleError, check

    try:
        check(tomllib.loads(path.read_text(encoding="utf-8")).get("rules", []))
    except OSError as e:
        raise ConfigError(f"rules file {path}: cannot be read: {e.strerror or e} (WEIBAO_RULES_FILE)") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"rules file {path}: not valid TOML: {_one_line(e)}") from None
    except (RuleError, AttributeError, TypeError) as e:
        raise ConfigError(f"rules file {path}: {_one_line(e)}") from None


def temporal_client_config(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for `temporalio.client.Client.connect` from the environment (and a
    Temporal config file, if there is one) by `temporalio.envconfig`: TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_GRPC_META_*, TEMPORAL_PROFILE,
    TEMPORAL_CONFIG_FILE; the address and namespace fall back on the defaults here."""
    from temporalio.envconfig import ClientConfig

    settings = settings or load()
    try:
        connect = dict(ClientConfig.load_client_connect_config())
    except (RuntimeError, OSError, ValueError) as e:  # the bridge's ConfigError is a RuntimeError
        raise ConfigError(f"Temporal client configuration (TEMPORAL_*, temporal.toml): {_one_line(e)}") from None
    connect.setdefault("target_host", settings.temporal_address)
    connect.setdefault("namespace", settings.temporal_namespace)
    try:
        Settings._address(connect["target_host"])  # one from a Temporal config file is checked here
    except ValueError as e:
        raise ConfigError(f"Temporal client configuration (temporal.toml) address: {e}") from None
    return connect


def fail(message: str) -> NoReturn:
    print(f"weibao: {_one_line(message)}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def startup() -> tuple[Settings, Org]:
    """What a process does first: the settings, the org file, the rules file and the
    Temporal client configuration, checked; on a problem, one line on stderr and exit 2."""
    try:
        settings = load()
        org = read_org(settings.org_file)
        check_notifications(settings, org)
        check_rules_file(settings)
        temporal_client_config(settings)
    except ConfigError as e:
        fail(f"configuration error: {e}")
    except OrgError as e:
        fail(f"org file {e}")
    return settings, org
