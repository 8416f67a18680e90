"""Connecting to Temporal with the pydantic data converter (client and worker alike)."""
from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import config


async def connect(address: str | None = None) -> Client:
    return await Client.connect(address or config.temporal_address(), namespace=config.temporal_namespace(),
                                data_converter=pydantic_data_converter)
