"""python -m services.sender: the delivery queue and its workers, on HOOKS_SENDER_LISTEN_ADDRESS."""

from __future__ import annotations

from services.common.server import run_service
from services.sender.server import build_server
from services.sender.settings import SenderSettings

if __name__ == "__main__":
    run_service(SenderSettings, build_server, lambda settings: settings.sender_listen_address)
