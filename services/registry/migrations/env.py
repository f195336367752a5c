from services.common.migrations_env import run
from services.registry.models import Base

run(target_metadata=Base.metadata)
