"""Builds hooks-client with the generated stubs it needs (the `hooks` package) taken from the
repository's gen/ at build time, so generated code is kept once, in gen/ (`make proto`).

The stubs are copied into the build, not into the source tree: build from a checkout
(`pip install ./client`, `pip wheel ./client`), where ../gen exists; HOOKS_GEN_DIR names another
gen/ folder. They are the same modules the hooks services import, from the same protos.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
GEN = Path(os.environ.get("HOOKS_GEN_DIR") or HERE.parent / "gen")
#: The generated modules a producer needs, with their imports: PublishMessage (matcher.proto, which
#: imports routing.proto, which imports endpoints.proto), the dead-letter reasons, RegisterApplication.
STUBS = [
    "hooks/matcher/v1/matcher_pb2",
    "hooks/matcher/v1/matcher_pb2_grpc",
    "hooks/matcher/v1/dead_letters_pb2",
    "hooks/registry/v1/applications_pb2",
    "hooks/registry/v1/applications_pb2_grpc",
    "hooks/registry/v1/routing_pb2",
    "hooks/registry/v1/endpoints_pb2",
]


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        if not (GEN / "hooks").is_dir():
            raise SystemExit(
                f"hooks-client: no generated stubs at {GEN}/hooks: build from a checkout of hooks (or set HOOKS_GEN_DIR)"
            )
        out = Path(self.build_lib)
        wanted: set[Path] = set()
        for stub in STUBS:
            for suffix in (".py", ".pyi"):
                source = GEN / f"{stub}{suffix}"
                if source.exists():
                    wanted.add(Path(f"{stub}{suffix}"))
            parts = Path(stub).parts[:-1]
            for depth in range(1, len(parts) + 1):
                wanted.add(Path(*parts[:depth], "__init__.py"))
        for relative in sorted(wanted):
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(GEN / relative, target)


setup(cmdclass={"build_py": BuildWithStubs})
