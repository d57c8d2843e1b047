# causalwatch — CPU-only image. Runs and the SQLite database live in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
# The CPU wheel of torch first: a plain `pip install` would pull the multi-GB CUDA build.
# Its version must stay pyproject.toml's pin (tests/test_container.py checks it).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY backend ./backend
COPY dashboard ./dashboard
# DL3013 asks for `pkg==version`: this installs the project itself from the copied source,
# whose dependencies are bounded in pyproject.toml (there is no lock file to pin them to).
# hadolint ignore=DL3013
RUN pip install ".[postgres]"

# A fixed numeric uid/gid: `USER 10001` lets Kubernetes' runAsNonRoot verify it is not root,
# and files written to a bind-mounted /data belong to a uid the host can map.
RUN groupadd --gid 10001 causalwatch \
    && useradd --create-home --uid 10001 --gid 10001 causalwatch \
    && mkdir -p /data/runs \
    && chown -R 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8000 8050

# Probes the API on the port it serves (CAUSALWATCH_PORT, when the user moved it); /healthz
# needs no token and fails when the database does not answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CAUSALWATCH_PORT', '8000') + '/healthz', timeout=4)"]

# Binding 0.0.0.0 makes causalwatch require a token: set CAUSALWATCH_TOKEN, or read the
# generated one in the container's log. Users bring the UCI file with -e CAUSALWATCH_DATA.
ENTRYPOINT ["causalwatch"]
CMD ["up", "--host", "0.0.0.0", "--runs-dir", "/data/runs"]
