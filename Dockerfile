# causalwatch — CPU-only image. Runs and the SQLite database live in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
# The CPU wheel of torch first: a plain `pip install` would pull the multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY backend ./backend
COPY dashboard ./dashboard
RUN pip install ".[postgres]"

RUN useradd --create-home --uid 10001 causalwatch \
    && mkdir -p /data/runs \
    && chown -R causalwatch /data
USER causalwatch
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8000 8050

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

# Binding 0.0.0.0 makes causalwatch require a token: set CAUSALWATCH_TOKEN, or read the
# generated one in the container's log. Users bring the UCI file with -e CAUSALWATCH_DATA.
ENTRYPOINT ["causalwatch"]
CMD ["up", "--host", "0.0.0.0", "--runs-dir", "/data/runs"]
