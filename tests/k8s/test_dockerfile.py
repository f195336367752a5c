"""The Dockerfile, checked without a Docker engine: multi-stage, slim Python 3.11, dependencies from
pyproject.toml the way `make` installs them, gen/ included, not root, no compilers in the final stage —
and the build stage's `pip install .` really yields an installation whose entry points import."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from k8s_manifests import COMPONENTS, MIGRATE_OVERLAYS, OVERLAYS, ROOT, pod_spec, render

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "cc ", "libpq-dev", "python3-dev")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(ARGs before the first FROM, stages) of a Dockerfile; continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            stages.append(Stage(base=base, name=name))
        elif not stages:
            if keyword == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


def copy_sources(stage: Stage) -> list[str]:
    """Paths a stage COPYs from the build context (not --from another stage)."""
    sources: list[str] = []
    for args in stage.all("COPY"):
        words = shlex.split(args)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources.extend(word.rstrip("/") for word in words[:-1])
    return sources


def pip_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` in a shell text (Dockerfile RUN lines, Makefile recipes)."""
    found = []
    for match in re.finditer(r"pip install ([^&;\n]*)", text):
        words = [w for w in shlex.split(match.group(1)) if not w.startswith("-")]
        found.append(words)
    return found


# ---- structure -----------------------------------------------------------------------------------------


def test_multi_stage_on_slim_python_3_11(stages):
    assert len(stages) >= 2, "a build stage and a runtime stage"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage.base), f"{stage.name}: {stage.base}"
    final = stages[-1]
    copied = [args for args in final.all("COPY") if "--from=" in args]
    assert copied, "the final stage takes the installed environment from the build stage"


def test_dependencies_come_from_pyproject_the_way_make_installs_them(stages):
    makefile = (ROOT / "Makefile").read_text()
    make_installs = [words for words in pip_installs(makefile) if any(w.startswith(".") for w in words)]
    assert make_installs, "the Makefile installs the project itself (pip install -e '.[dev]')"
    dockerfile_installs = [words for stage in stages for run in stage.all("RUN") for words in pip_installs(run)]
    assert dockerfile_installs == [["."]], (
        f"the image installs the project and nothing else, no extras, no pinned names: {dockerfile_installs}"
    )
    build = next(s for s in stages if any("pip install" in run for run in s.all("RUN")))
    assert "pyproject.toml" in copy_sources(build)
    assert not list(ROOT.glob("requirements*.txt")), "pyproject.toml is the one list of dependencies"
    assert "requirements" not in DOCKERFILE.read_text()


def test_generated_code_and_every_package_is_in_the_build_context_copied(stages):
    build = next(s for s in stages if any("pip install" in run for run in s.all("RUN")))
    sources = copy_sources(build)
    for needed in ("gen", "services", "gateway", "cli", "README.md"):
        assert needed in sources, f"the build stage does not COPY {needed}"


def test_runs_as_the_non_root_user_the_pods_expect(stages):
    final = stages[-1]
    users = final.all("USER")
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: numeric and not root, so runAsNonRoot can check it"
    for overlay in OVERLAYS + MIGRATE_OVERLAYS:
        for obj in render(overlay):
            if obj["kind"] in ("Deployment", "Job"):
                assert pod_spec(obj)["securityContext"]["runAsUser"] == int(user), obj["metadata"]["name"]


def test_no_build_tools_in_the_final_stage(stages):
    final = stages[-1]
    for run in final.all("RUN"):
        assert "pip install" not in run, "the final stage installs nothing; it copies the venv"
        if "apt-get install" in run:
            assert not any(tool in run + " " for tool in BUILD_TOOLS), f"build tools in the final stage: {run}"


def test_dockerignore_keeps_out_the_local_state_but_not_what_is_copied(stages):
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for local in (".venv", ".git", "node_modules", "var", "tests"):
        assert local in patterns, f".dockerignore should exclude {local}"
    for stage in stages:
        for source in copy_sources(stage):
            ignored = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(source, p)]
            assert not ignored, f"{source} is COPYed but .dockerignore excludes it ({ignored})"


# ---- what `pip install .` makes of the build context ----------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory, stages) -> Path:
    """The build stage's steps, without Docker: the COPYed context, `pip install .` (no deps: they are
    the venv's), into a folder of its own."""
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    build = next(s for s in stages if any("pip install" in run for run in s.all("RUN")))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "*.egg-info")
    for source in copy_sources(build):
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=ignore)
        else:
            shutil.copy2(path, context / source)
    wheels = work / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("*.whl")
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def test_the_installation_holds_the_generated_code_and_the_migrations(installed):
    for proto in (ROOT / "protos" / "hooks").rglob("*.proto"):
        module = proto.relative_to(ROOT / "protos").with_name(proto.stem + "_pb2.py")
        assert (installed / module).is_file(), f"{module} (generated) is missing from the installation"
    # The gateway's OpenAPI descriptions come from the generated descriptor set.
    assert (installed / "hooks" / "descriptor_set.binpb").is_file()
    for migrations in ROOT.glob("services/*/migrations"):
        for source in migrations.rglob("*"):
            if source.is_file() and source.suffix in (".py", ".mako", ".ini") and "__pycache__" not in source.parts:
                relative = source.relative_to(ROOT)
                assert (installed / relative).is_file(), f"{relative} is missing: the image could not migrate"


def test_the_entry_points_import_from_the_installation_alone(installed):
    """What each Deployment runs, imported from the installed copy (not from the working tree)."""
    modules = [module for module, *_ in COMPONENTS.values()]
    code = "\n".join(
        [
            "import importlib, sys",
            f"for name in {modules!r} + ['cli.main']:",
            "    module = importlib.import_module(name + '.__main__' if name != 'cli.main' else name)",
            f"    assert module.__file__.startswith({str(installed)!r}), (name, module.__file__)",
            "from cli.main import main",
            "main(['db', 'upgrade', '--help'])",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=installed.parent,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "upgrade" in result.stdout.lower()


def test_the_image_environment_names_only_settings_fields(stages):
    from k8s_manifests import settings_variables

    names = set(re.findall(r"\b(HOOKS_[A-Z0-9_]+)=", " ".join(stages[-1].all("ENV"))))
    assert names, "the image sets its production defaults (JSON logs)"
    assert names <= settings_variables(), f"not read by any settings class: {sorted(names - settings_variables())}"
