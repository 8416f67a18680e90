"""The configuration (activities/settings.py): defaults, one line naming the variable or
file for each bad value, a changed environment seen by the next call, the PostgreSQL
connection string, the Temporal client configuration by temporalio.envconfig, and the
processes stopping at start with exit status 2 and no traceback."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from activities import config, settings
from activities.settings import ROOT, ConfigError, PREFIXES
from domain.org import OrgError


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """No WEIBAO_*, POSTGRES_* or TEMPORAL_* from the caller, and no Temporal config file
    of the user's."""
    for name in list(os.environ):
        if name.upper().startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))


def test_defaults():
    s = settings.load()
    assert (s.temporal_address, s.temporal_namespace, s.task_queue) == ("localhost:7233", "default", "weibao")
    assert s.temporal_ui_port == 8233
    assert (s.event_store, s.data_dir, s.sqlite_path) == ("sqlite", ROOT / ".weibao", ROOT / ".weibao" / "events.db")
    assert s.postgres() == {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "5432", "POSTGRES_DBNAME": "postgres",
                            "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": ""}
    assert (s.api_host, s.api_port, s.api_log_level, s.api_access_log) == ("127.0.0.1", 8000, "info", True)
    assert s.org_file == ROOT / "org.example.toml" and s.rules_file is None
    assert (s.projection_batch, s.projection_workers, s.projection_processes, s.projection_poll) == (None, None, 1, 1.0)
    assert s.log_level == "INFO"
    assert all(s.windows(kind) is None for kind in ("complaint", "return", "inspection"))
    # the accessors the code calls
    assert config.store_kind() == "sqlite" and config.sqlite_path() == ROOT / ".weibao" / "events.db"
    assert config.task_queue() == "weibao" and config.org_file() == ROOT / "org.example.toml"
    assert config.env("WEIBAO_API_PORT", "1") == "8000" and config.env("WEIBAO_COMPLAINT_WINDOWS", "") == ""
    assert config.env("WEIBAO_PROJECTION_BATCH", "") == ""  # no default: the caller's
    assert config.temporal_connect_config() == {"target_host": "localhost:7233", "namespace": "default"}
    assert config.temporal_address() == "localhost:7233" and config.temporal_namespace() == "default"
    assert conninfo_to_dict(config.postgres_conninfo()) == {"host": "127.0.0.1", "port": "5432",
                                                            "dbname": "postgres", "user": "postgres"}


def test_every_variable_of_the_settings_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration"):readme.index("## Architecture")]
    missing = [v for v in settings.VARIABLES if f"`{v}`" not in table]
    assert not missing


def test_a_changed_environment_is_seen_by_the_next_call(monkeypatch, tmp_path):
    assert config.store_kind() == "sqlite"
    monkeypatch.setenv("WEIBAO_EVENT_STORE", "postgres")
    monkeypatch.setenv("POSTGRES_DBNAME", "elsewhere")
    assert config.store_kind() == "postgres" and config.postgres()["POSTGRES_DBNAME"] == "elsewhere"
    monkeypatch.setenv("WEIBAO_DATA_DIR", str(tmp_path))
    assert config.sqlite_path() == tmp_path / "events.db"
    monkeypatch.setenv("WEIBAO_SQLITE_PATH", str(tmp_path / "other.db"))
    assert config.sqlite_path() == tmp_path / "other.db"
    monkeypatch.setenv("WEIBAO_SQLITE_PATH", "")  # empty counts as unset
    assert config.sqlite_path() == tmp_path / "events.db"


def test_the_sqlite_file_is_switched_to_wal_even_while_another_process_writes_to_it(monkeypatch, tmp_path):
    """SQLite refuses a switch to WAL at once, without waiting, while another connection
    writes to the file in its old mode (two processes opening a new store together):
    the switch is tried again until the writer is done, and given up after the wait."""
    monkeypatch.setenv("WEIBAO_SQLITE_PATH", str(tmp_path / "new" / "events.db"))
    (tmp_path / "new").mkdir()
    writer = sqlite3.connect(tmp_path / "new" / "events.db", isolation_level=None)
    writer.execute("CREATE TABLE t (a)")
    writer.execute("BEGIN IMMEDIATE")  # the other process, mid-write, in the rollback journal
    writer.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        config.sqlite_file(wait=0)  # held for good: refused once the wait is over
    waits = []

    def writer_done(seconds: float) -> None:  # the pause between tries: the writer commits
        waits.append(seconds)
        writer.execute("COMMIT")

    monkeypatch.setattr(config.time, "sleep", writer_done)
    path = config.sqlite_file()
    assert len(waits) == 1  # refused once, then switched
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT a FROM t").fetchall() == [(1,)]
    writer.close()


def test_values_are_normalised_and_windows_parsed(monkeypatch):
    monkeypatch.setenv("WEIBAO_LOG_LEVEL", "debug")
    monkeypatch.setenv("WEIBAO_API_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("WEIBAO_API_ACCESS_LOG", "off")
    monkeypatch.setenv("WEIBAO_PROJECTION_BATCH", "300")
    monkeypatch.setenv("WEIBAO_COMPLAINT_WINDOWS", "acknowledged=30m")
    monkeypatch.setenv("WEIBAO_RETURN_WINDOWS", "refund=2d")
    s = settings.load()
    assert (s.log_level, s.api_log_level, s.api_access_log, s.projection_batch) == ("DEBUG", "warning", False, 300)
    assert config.env("WEIBAO_LOG_LEVEL", "INFO") == "DEBUG" and config.env("WEIBAO_API_ACCESS_LOG", "1") == "0"
    assert config.env("WEIBAO_COMPLAINT_WINDOWS", "") == "acknowledged=30m"
    assert config.windows("complaint") == {"acknowledged": timedelta(minutes=30), "replied": timedelta(hours=24)}
    assert config.windows("return")["refund"] == timedelta(days=2)
    assert config.windows("inspection") is None


BAD = [
    ("WEIBAO_EVENT_STORE", "mysql", "must be 'sqlite' or 'postgres', not 'mysql'"),
    ("TEMPORAL_ADDRESS", "nowhere", "must be host:port, not 'nowhere'"),
    ("TEMPORAL_NAMESPACE", "  ", "must not be blank"),
    ("TEMPORAL_TLS", "yes", "must be true or false"),
    ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/no/such/cert.pem", "no such file: /no/such/cert.pem"),
    ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/no/such/ca.pem", "no such file"),
    ("TEMPORAL_CONFIG_FILE", "/no/such/temporal.toml", "no such file"),
    ("WEIBAO_TASK_QUEUE", " ", "must not be blank"),
    ("WEIBAO_TEMPORAL_UI_PORT", "ui", "must be a port number"),
    ("POSTGRES_PORT", "abc", "must be a port number (1-65535), not 'abc'"),
    ("WEIBAO_API_PORT", "70000", "must be a port number"),
    ("WEIBAO_API_LOG_LEVEL", "loud", "must be one of critical, error"),
    ("WEIBAO_API_ACCESS_LOG", "maybe", "not 'maybe'"),
    ("WEIBAO_COMPLAINT_WINDOWS", "acknowledged=soon", "expected goal=number"),
    ("WEIBAO_RETURN_WINDOWS", "refund=0h", "longer than zero"),
    ("WEIBAO_INSPECTION_WINDOWS", "yearly=1d", "unknown window 'yearly'"),
    ("WEIBAO_PROJECTION_BATCH", "0", "must be a whole number above 0, not '0'"),
    ("WEIBAO_PROJECTION_WORKERS", "-1", "must be a whole number above 0"),
    ("WEIBAO_PROJECTION_PROCESSES", "two", "must be a whole number above 0"),
    ("WEIBAO_PROJECTION_POLL", "0", "must be a number of seconds above 0"),
    ("WEIBAO_LOG_LEVEL", "chatty", "must be one of"),
]


@pytest.mark.parametrize("variable,value,problem", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, capsys, variable, value, problem):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as e:
        settings.load()
    message = str(e.value)
    assert message.startswith(f"{variable}: ") and problem in message and "\n" not in message
    with pytest.raises(ValueError):  # what the accessors raised before, too
        config.store_kind()
    with pytest.raises(SystemExit) as stopped:
        config.startup()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"weibao: configuration error: {message}\n"


def test_two_bad_values_are_both_named_on_one_line(monkeypatch):
    monkeypatch.setenv("WEIBAO_EVENT_STORE", "mysql")
    monkeypatch.setenv("WEIBAO_API_PORT", "http")
    with pytest.raises(ConfigError) as e:
        settings.load()
    assert "WEIBAO_EVENT_STORE: " in str(e.value) and "; WEIBAO_API_PORT: " in str(e.value)
    assert "\n" not in str(e.value)


def startup_error(capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        config.startup()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err.strip()


def test_a_missing_org_file_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "org.toml"
    monkeypatch.setenv("WEIBAO_ORG_FILE", str(missing))
    with pytest.raises(OrgError):
        config.load_org()
    assert startup_error(capsys) == (f"weibao: org file {missing}: cannot be read: No such file or directory "
                                     "(WEIBAO_ORG_FILE)")


def test_a_broken_org_file_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    broken = tmp_path / "org.toml"
    broken.write_text("[[staff]\nid = 1\n", encoding="utf-8")
    monkeypatch.setenv("WEIBAO_ORG_FILE", str(broken))
    assert startup_error(capsys).startswith(f"weibao: org file {broken}: not valid TOML: ")
    broken.write_text('[[departments]]\nid = "x"\n', encoding="utf-8")
    assert startup_error(capsys) == f"weibao: org file {broken}: a department lacks 'kind'"


def test_a_missing_or_broken_rules_file_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    monkeypatch.setenv("WEIBAO_RULES_FILE", str(rules))
    assert startup_error(capsys) == (f"weibao: configuration error: rules file {rules}: cannot be read: "
                                     "No such file or directory (WEIBAO_RULES_FILE)")
    rules.write_text("rules = [", encoding="utf-8")
    assert startup_error(capsys).startswith(f"weibao: configuration error: rules file {rules}: not valid TOML: ")
    rules.write_text('[[rules]]\nid = "r1"\nkind = "bonus"\n', encoding="utf-8")
    assert startup_error(capsys).startswith(f"weibao: configuration error: rules file {rules}: rule r1: ")


def test_a_good_configuration_starts(monkeypatch, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("rules = []\n", encoding="utf-8")
    monkeypatch.setenv("WEIBAO_RULES_FILE", str(rules))
    s, org = config.startup()
    assert s.rules_file == rules and org.staff


def test_a_password_with_a_space_and_quotes_survives_the_conninfo(monkeypatch):
    password = "se cret 'q' \"d\" \\ end"
    monkeypatch.setenv("POSTGRES_PASSWORD", password)
    monkeypatch.setenv("POSTGRES_DBNAME", "my db")
    parsed = conninfo_to_dict(config.postgres_conninfo())
    assert parsed["password"] == password and parsed["dbname"] == "my db" and parsed["port"] == "5432"
    pg = {**config.postgres(), "POSTGRES_DBNAME": "bench"}  # bench/projections.py builds one so
    assert conninfo_to_dict(config.postgres_conninfo(pg))["dbname"] == "bench"


def test_temporal_api_key_and_tls_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPORAL_ADDRESS", "weibao.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "weibao.a1b2c")
    monkeypatch.setenv("TEMPORAL_API_KEY", "key-123")
    options = config.temporal_connect_config()
    assert options == {"target_host": "weibao.a1b2c.tmprl.cloud:7233", "namespace": "weibao.a1b2c",
                       "api_key": "key-123", "tls": True}
    assert "key-123" not in repr(settings.load())  # a secret is not shown
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    assert config.temporal_connect_config()["tls"] is False
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(ca))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    tls = config.temporal_connect_config()["tls"]
    assert tls.server_root_ca_cert == ca.read_bytes() and tls.domain == "temporal.internal"


def test_a_temporal_profile_that_is_not_there_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("TEMPORAL_PROFILE", "staging")
    assert startup_error(capsys) == ("weibao: configuration error: Temporal client configuration "
                                     "(TEMPORAL_*, temporal.toml): Profile 'staging' not found")


async def test_an_explicit_address_wins_over_the_environment(env, monkeypatch):
    from temporalio.contrib.pydantic import pydantic_data_converter

    from activities.temporal import connect

    target = env.client.service_client.config.target_host
    monkeypatch.setenv("TEMPORAL_ADDRESS", "nowhere.invalid:7233")
    client = await connect(target)
    assert client.service_client.config.target_host == target
    assert await client.service_client.check_health()
    assert client.data_converter.payload_converter_class is pydantic_data_converter.payload_converter_class


def run(argv: list[str], **extra: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith(PREFIXES)}
    return subprocess.run([sys.executable, *argv], cwd=str(ROOT), env={**environment, **extra},
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("argv", [["worker.py"], ["-m", "api"], ["-m", "projections"], ["-m", "api.cli", "run"]],
                         ids=["worker", "api", "projections", "weibao run"])
def test_a_process_with_a_bad_setting_stops_at_once_with_one_line_and_status_2(argv, tmp_path):
    done = run(argv, WEIBAO_EVENT_STORE="mysql", WEIBAO_DATA_DIR=str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("weibao: configuration error: WEIBAO_EVENT_STORE: must be 'sqlite' or 'postgres', "
                           "not 'mysql'\n")
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # weibao run started nothing


def test_a_process_with_a_missing_org_file_stops_with_one_line_naming_it(tmp_path):
    done = run(["-m", "api"], WEIBAO_ORG_FILE=str(tmp_path / "org.toml"))
    assert done.returncode == 2
    assert done.stderr == f"weibao: org file {tmp_path / 'org.toml'}: cannot be read: No such file or directory " \
                          "(WEIBAO_ORG_FILE)\n"


def test_the_workflows_run_outside_the_sandbox_unless_asked(monkeypatch):
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from worker import workflow_runner

    monkeypatch.delenv("WEIBAO_WORKFLOW_SANDBOX", raising=False)
    assert isinstance(workflow_runner(), UnsandboxedWorkflowRunner)
    monkeypatch.setenv("WEIBAO_WORKFLOW_SANDBOX", "true")
    assert isinstance(workflow_runner(), SandboxedWorkflowRunner)
