# Images of the market-forecast flows, run by the Prefect Docker work pool (prefect.yaml) and
# built by `prefect deploy` (docs/deployment.md). Two targets of one file:
#
#   daily     the daily-forecast flow: no TensorFlow, no Keras (the champion's .keras weights run
#             on the NumPy forward pass of tasks/core/lstm_numpy.py); requirements-daily.lock
#   training  the train-model flow (and the daily one): the daily image's packages plus
#             TensorFlow and Keras, in a layer of their own; requirements-training.lock
#
# Base: python:3.11-slim, not prefecthq/prefect:3-python3.11. The Prefect image ships its own
# Prefect and dependency versions (installed with uv); here every package version comes from the
# locks, whose pins are those of requirements.lock, the file the tests install, so the images run
# exactly what was tested (without the test tools).
# BASE_IMAGE exists for builders without Docker Hub: any image with Python 3.11 whose `python`
# can `pip install` (the test suite builds such a stand-in from Debian packages,
# tests/harness/docker_engine.py). Leave it alone otherwise.
# The classic builder that prefect-docker's build step uses (docker-py) has no BuildKit, so this
# file uses no BuildKit-only syntax (no RUN --mount, no heredocs).
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- what both images share
FROM ${BASE_IMAGE} AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TF_CPP_MIN_LOG_LEVEL=2

# The flows run as this unprivileged user; Prefect keeps its home in /home/app/.prefect.
RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid app --create-home --home-dir /home/app app

# Must equal the set_working_directory pull step of the Docker deployments in prefect.yaml.
WORKDIR /opt/market-forecast

# Dependencies come before the code, in layers that depend on the lock files only, so a code
# change reinstalls nothing. The locks (`make lock`) hold environment markers (tensorflow-cpu on
# linux x86_64, async-timeout below Python 3.11.3, ...), setuptools and wheel included.
# --no-deps: nothing else is resolved; pip check proves each set complete for this interpreter.
FROM base AS daily-dependencies
COPY requirements-daily.lock ./
RUN python -m pip install --no-cache-dir --no-deps -r requirements-daily.lock \
    && python -m pip check

# Training adds TensorFlow and Keras (and what they need) on top of the daily image's layers.
FROM daily-dependencies AS training-dependencies
COPY requirements-training.lock ./
RUN python -m pip install --no-cache-dir --no-deps -r requirements-training.lock \
    && python -m pip check

# ---------------------------------------------------------------- daily (not the default target: `training` is last)
FROM daily-dependencies AS daily

# What changes with every commit comes after the dependency layers: a build argument takes part in
# the cache key of every RUN after its ARG line, so GIT_SHA declared earlier would reinstall the
# dependencies on every commit.
# Commit the image is built from; reported by the flows in every manifest.json (code_version).
ARG GIT_SHA=""
# Keep VERSION equal to pyproject.toml's version (tests/deploy/test_dockerfile.py checks it).
ARG VERSION=0.1.0
# Repository URL for the source label, e.g. --build-arg SOURCE_URL="$(git remote get-url origin)".
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="market-forecast-daily" \
      org.opencontainers.image.description="Prefect daily-forecast flow: FRED -> champion LSTM (NumPy runtime) -> CSVs for Power BI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="${SOURCE_URL}"
ENV MARKET_FORECAST_GIT_SHA=${GIT_SHA}

# The project (no dependency resolution). The source stays in the working directory as well:
# the deployments' entrypoints (flows/daily_forecast.py:daily_forecast) are loaded from it.
# (README.md* : pyproject.toml names it as the package's long description; the glob keeps a tree
# without it buildable.)
# Those working-directory modules are compiled here: with PYTHONDONTWRITEBYTECODE (and a directory
# the runtime user cannot write) every flow-run container would otherwise compile them again on
# start-up, about 70 ms of the daily run's imports (pip compiles what it installs itself).
COPY pyproject.toml README.md* ./
COPY blocks ./blocks
COPY flows ./flows
COPY tasks ./tasks
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -m pip check \
    && rm -rf build market_forecast.egg-info \
    && python -m compileall -q blocks flows tasks \
    && install -d -o app -g app /opt/market-forecast/data

# Numeric, so that runtimes checking runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001

# Smoke test at build time, as the runtime user: the daily flow imports, and TensorFlow, Keras and
# jax are not even installed.
RUN python -c "import importlib.util as u, flows.daily_forecast, blocks.fred; missing = [m for m in ('tensorflow', 'keras', 'jax') if u.find_spec(m)]; assert not missing, missing; print('daily flow imports; no', 'TensorFlow')"

# A flow-run container lives as long as its run; this cheap check says whether its Python
# environment is still intact.
HEALTHCHECK --interval=5m --timeout=60s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import prefect, tasks.core.settings, blocks.fred"]

# The Docker worker replaces this with `prefect flow-run execute`; by hand the image runs a flow.
CMD ["python", "-m", "flows.daily_forecast", "--help"]

# ---------------------------------------------------------------- training
FROM training-dependencies AS training

# The same project layer as the daily image's (see there for the why of each line).
ARG GIT_SHA=""
ARG VERSION=0.1.0
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="market-forecast-training" \
      org.opencontainers.image.description="Prefect train-model flow: FRED -> LSTM (TensorFlow) -> backtest -> champion model store" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="${SOURCE_URL}"
ENV MARKET_FORECAST_GIT_SHA=${GIT_SHA}

COPY pyproject.toml README.md* ./
COPY blocks ./blocks
COPY flows ./flows
COPY tasks ./tasks
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -m pip check \
    && rm -rf build market_forecast.egg-info \
    && python -m compileall -q blocks flows tasks \
    && install -d -o app -g app /opt/market-forecast/data

USER 10001:10001

# Smoke test at build time, as the runtime user: both flows import, TensorFlow included.
RUN python -c "import flows.daily_forecast, flows.train_model, blocks.fred, tensorflow; print('market-forecast flows import')"

HEALTHCHECK --interval=5m --timeout=60s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import prefect, tasks.core.settings, blocks.fred"]

CMD ["python", "-m", "flows.train_model", "--help"]
