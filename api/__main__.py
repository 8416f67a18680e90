"""`python -m api`: serve the HTTP API on WEIBAO_API_HOST:WEIBAO_API_PORT."""
import logging

import uvicorn

from activities import config
from api.app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(create_app(), host=config.env("WEIBAO_API_HOST", "127.0.0.1"),
                port=int(config.env("WEIBAO_API_PORT", "8000")),
                log_level=config.env("WEIBAO_API_LOG_LEVEL", "info"),
                access_log=config.env("WEIBAO_API_ACCESS_LOG", "1") not in ("0", "false", "no"),
                timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
