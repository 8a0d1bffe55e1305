# The API and the worker share this image (docker-compose.yml picks the command).
FROM python:3.11-slim

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    PYTHONUNBUFFERED=1
WORKDIR /app

# Dependencies first (cached while only the code changes); no dev or local-stack tools.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --no-install-project

COPY . .
RUN useradd --uid 10001 --no-create-home app
USER app
EXPOSE 8000
CMD [".venv/bin/uvicorn", "--factory", "api.main:create_app", "--host", "0.0.0.0", "--port", "8000"]
