"""Connecting to Temporal with the pydantic data converter (client and worker alike).

Address, namespace, API key and TLS come from the environment by temporalio.envconfig
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, ...; README
"Configuration"), so a secured cluster needs no code change."""
from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import config


async def connect(address: str | None = None) -> Client:
    """A client of the configured cluster; `address`, if given, wins over the environment's."""
    options = config.temporal_connect_config()
    if address:
        options["target_host"] = address
    return await Client.connect(**options, data_converter=pydantic_data_converter)
