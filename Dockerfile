# bidsapp container. Build with scripts/build-image.sh (it passes VERSION from pyproject.toml), or by hand:
#   docker build --build-arg VERSION="$(scripts/version.sh)" -t "bidsapp/bidsapp:$(scripts/version.sh)" .
# Offline builds (what .ci/container-build does): a local Python 3.11 base image and TemplateFlow files from
# a local folder instead of the download:
#   --build-arg BASE_IMAGE=IMAGE --build-arg TEMPLATEFLOW=local --build-context templateflow=DIR
# Stages: build (the wheel) -> venv (pinned runtime, slimmed) -> templates (download | local) -> runtime.
ARG BASE_IMAGE=docker.io/library/python:3.11.10-slim-bookworm
ARG TEMPLATEFLOW=download

FROM ${BASE_IMAGE} AS build
# PIP_CERT: a CA bundle for pip where the way to PyPI needs one (a build-time mount; empty by default)
ARG PIP_CERT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bidsapp ./bidsapp
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE} AS venv
ARG PIP_CERT
COPY constraints.txt scripts/install-runtime.sh /tmp/install/
COPY --from=build /dist/ /tmp/install/dist/
# the one wheel the build stage made, whatever its version (pyproject.toml decides it)
RUN sh /tmp/install/install-runtime.sh /opt/venv /tmp/install/constraints.txt /tmp/install/dist/bidsapp-*.whl \
    && rm -rf /tmp/install

# The template masks (1 and 2 mm) and the prefetched atlas set (bidsapp-fetch-templates' default; listed with
# their sizes in docs/getting-started.md) are in the image: the container never downloads at run time.
FROM venv AS templates-download
RUN TEMPLATEFLOW_HOME=/opt/templateflow /opt/venv/bin/bidsapp-fetch-templates --resolution 1 2 \
    && chmod -R a+rX /opt/templateflow

# --build-arg TEMPLATEFLOW=local --build-context templateflow=DIR: DIR is a TEMPLATEFLOW_HOME tree
FROM venv AS templates-local
# hadolint ignore=DL3022
COPY --from=templateflow . /opt/templateflow/
RUN chmod -R a+rX /opt/templateflow

# hadolint ignore=DL3006
FROM templates-${TEMPLATEFLOW} AS templates

FROM ${BASE_IMAGE} AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="bidsapp" \
      org.opencontainers.image.description="BIDS App after fMRIPrep: cleaned samples x features arrays with provenance" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/bidsapp/bidsapp" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NIPYPE_NO_ET=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    BIDSAPP_CONTAINER_IMAGE="bidsapp/bidsapp:${VERSION}" \
    PATH="/opt/venv/bin:${PATH}"
COPY --from=venv /opt/venv /opt/venv
COPY --from=templates /opt/templateflow /opt/templateflow
# VERSION only names the image (labels, tag, GeneratedBy.Container): refuse one that disagrees with the code
RUN v="$(bidsapp --version)" \
    && if [ "$v" != "bidsapp ${VERSION}" ]; then \
         echo "VERSION build argument '${VERSION}' but the package says '$v':" \
              "build with scripts/build-image.sh or --build-arg VERSION=\"\$(scripts/version.sh)\"" >&2; \
         exit 1; \
       fi \
    && useradd --create-home --uid 1000 --shell /usr/sbin/nologin bidsapp
USER 1000:1000
WORKDIR /home/bidsapp
ENTRYPOINT ["bidsapp"]
