"""Connecting to Temporal with the pydantic data converter (client and worker alike).

Address, namespace, API key and TLS come from the environment by temporalio.envconfig
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, ...; README
"Configuration"), so a secured cluster needs no code change."""
from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from activities import config, telemetry


async def connect(address: str | None = None, runtime: Runtime | None = None) -> Client:
    """A client of the configured cluster; `address`, if given, wins over the environment's.
    With tracing on (activities/telemetry.py) it carries the trace context to the workflows
    and activities, and so does a worker built from it; `runtime`: the worker's, with metrics."""
    options = config.temporal_connect_config()
    if address:
        options["target_host"] = address
    return await Client.connect(**options, data_converter=pydantic_data_converter,
                                plugins=telemetry.plugins(), runtime=runtime)
