"""`python -m services.registry`: serves the registry on HOOKS_REGISTRY_LISTEN_ADDRESS until SIGTERM."""

from __future__ import annotations

from services.common.server import run_service
from services.registry.server import build_server
from services.registry.settings import RegistrySettings

if __name__ == "__main__":
    run_service(RegistrySettings, build_server, lambda settings: settings.registry_listen_address)
