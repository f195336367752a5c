"""`python -m services.matcher`: serve MatcherService and consume hooks.outbox until SIGTERM."""

from __future__ import annotations

from services.common.server import run_service
from services.matcher.server import build_server
from services.matcher.settings import MatcherSettings

if __name__ == "__main__":
    run_service(MatcherSettings, build_server, lambda settings: settings.matcher_listen_address)
