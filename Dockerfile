# bidsapp container: docker build -t bidsapp/bidsapp:0.1.0 .
# Stage 1 builds the wheel; stage 2 is a slim runtime with pinned dependencies and prefetched templates.
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bidsapp ./bidsapp
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11.10-slim-bookworm AS runtime
ARG VERSION=0.1.0
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
    TEMPLATEFLOW_HOME=/opt/templateflow \
    BIDSAPP_CONTAINER_IMAGE="bidsapp/bidsapp:${VERSION}" \
    PATH="/opt/venv/bin:${PATH}"
COPY constraints.txt scripts/install-runtime.sh /tmp/install/
COPY --from=build /dist/ /tmp/install/dist/
RUN sh /tmp/install/install-runtime.sh /opt/venv /tmp/install/constraints.txt /tmp/install/dist/bidsapp-${VERSION}-py3-none-any.whl \
    && rm -rf /tmp/install
# Prefetch every TemplateFlow file bidsapp can use: the container never downloads at run time.
RUN bidsapp-fetch-templates --resolution 1 2 && chmod -R a+rX /opt/templateflow
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin bidsapp
USER 1000:1000
WORKDIR /home/bidsapp
ENTRYPOINT ["bidsapp"]
