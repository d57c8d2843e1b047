# causalwatch — CPU-only image. Runs and the database live in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CAUSALWATCH_RUNS_DIR=/data/runs

WORKDIR /app
# The CPU wheel of torch first: a plain `pip install` would pull the multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY backend ./backend
COPY dashboard ./dashboard
RUN pip install .

RUN useradd --create-home --uid 10001 causalwatch \
    && mkdir -p /data/runs \
    && chown -R causalwatch /data
USER causalwatch
VOLUME ["/data"]
WORKDIR /data

ENTRYPOINT ["causalwatch"]
CMD ["train", "--preset", "uci", "--runs-dir", "/data/runs"]
