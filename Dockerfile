# syntax=docker/dockerfile:1
#
# One image for every component of hooks; each Deployment picks its command:
#   python -m services.registry | services.sender | services.matcher | gateway, and `hooks db upgrade`.
#
# Dependencies come from pyproject.toml only, installed with `pip install .` exactly as `make install`
# installs them (`pip install -e '.[dev]'`), minus the dev/embedded extras production does not need.
# Build: docker build -t hooks:$(python -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])') .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv with hooks and its pinned dependencies --------------------------------------
FROM ${PYTHON_IMAGE} AS build

# Compilers only for the rare dependency without a wheel for this platform; they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/hooks \
    PATH=/opt/hooks/bin:$PATH
# The build backend (setuptools, per [build-system]) is fetched by pip's isolated build.
RUN python -m venv /opt/hooks

WORKDIR /src
# What `pip install .` needs: the project file (and the README it names), then the packages.
COPY pyproject.toml README.md ./
COPY gen/ gen/
COPY services/ services/
COPY gateway/ gateway/
COPY cli/ cli/
COPY client/src/ client/src/
# Not editable: the code (generated gen/hooks included) is copied into the venv's site-packages,
# byte-compiled there, so the final stage needs neither /src nor a writable filesystem.
# The check runs from / so it imports the installed copy, not /src.
RUN pip install . \
    && cd / && python -c "import hooks.registry.v1.endpoints_pb2, services.registry.__main__, gateway.__main__, cli.db"

# ---- runtime: the venv on a clean slim image, no compilers, not root ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 hooks \
    && useradd --system --uid 10001 --gid hooks --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hooks

COPY --from=build /opt/hooks /opt/hooks

ENV VIRTUAL_ENV=/opt/hooks \
    PATH=/opt/hooks/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOOKS_LOG_FORMAT=json

# The pods mount an emptyDir here; the root filesystem is read-only.
WORKDIR /tmp
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001

EXPOSE 50051 50052 50053 8080 9090
# Each Deployment sets its own command; this default only says what the image holds.
CMD ["hooks", "--help"]
