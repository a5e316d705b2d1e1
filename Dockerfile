# One image for the three services: `python -m services.<name>`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY devstack ./devstack
RUN pip install --no-cache-dir . && useradd --system --no-create-home app
USER app
CMD ["python", "-m", "services.booking"]
