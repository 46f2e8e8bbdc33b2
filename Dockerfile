# The Siyu Ledger image: `siyu serve` by default; the projector runs `siyu project`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the package needs (no .venv, var/ or tests). README.m[d]: copied when present.
COPY pyproject.toml README.m[d] ./
COPY domain ./domain
COPY projections ./projections
COPY api ./api
RUN pip install . && useradd --system --create-home --home-dir /home/siyu siyu \
    && mkdir -p /app/var && chown siyu /app/var

USER siyu
EXPOSE 8000
CMD ["siyu", "serve", "--host", "0.0.0.0", "--port", "8000"]
