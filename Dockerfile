# One image for the three services: `python -m services.<name>`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY devstack ./devstack
# a numeric user, so that Kubernetes' runAsNonRoot can check it (deploy/k8s runs it as 10001)
RUN pip install --no-cache-dir . && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home app
USER 10001:10001
CMD ["python", "-m", "services.booking"]
