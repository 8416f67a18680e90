"""`python -m api`: serve the HTTP API on WEIBAO_API_HOST:WEIBAO_API_PORT (its metrics at
`/metrics`, health at `/healthz` and `/readyz` on the same port)."""
from activities import config, logs, telemetry


def main() -> None:
    settings, _ = config.startup()  # a bad setting or org file: one line on stderr, exit 2
    import uvicorn

    from api.app import create_app
    from api.limits import HEAD_BYTES

    logs.setup()  # uvicorn's lines too (log_config=None: they go to the root logger's one handler)
    telemetry.setup_tracing("weibao-api")  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    try:
        uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_level=settings.api_log_level,
                    access_log=settings.api_access_log, timeout_graceful_shutdown=10, log_config=None,
                    h11_max_incomplete_event_size=HEAD_BYTES)  # a long URL reaches the API's own 414
    finally:
        telemetry.flush_traces()


if __name__ == "__main__":
    main()
