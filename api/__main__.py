"""`python -m api`: serve the HTTP API on WEIBAO_API_HOST:WEIBAO_API_PORT."""
import logging

from activities import config


def main() -> None:
    settings, _ = config.startup()  # a bad setting or org file: one line on stderr, exit 2
    import uvicorn

    from api.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_level=settings.api_log_level,
                access_log=settings.api_access_log, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
