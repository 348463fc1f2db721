# The harness as a container, for a laptop that has Docker but no root Linux shell:
#   docker compose run --rm harness demo
# It drives sibling lab containers through the mounted Docker socket (root on the host: see
# README) and writes results to ./results.
ARG DEBIAN_RELEASE=trixie
FROM debian:${DEBIAN_RELEASE}-slim
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv docker-compose ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY lab/ca-certificates/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
WORKDIR /work
COPY pyproject.toml README.md docker-compose.yml ./
COPY lab/ lab/
COPY harness/ harness/
RUN python3 -m venv /opt/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install --no-cache-dir -q -e . \
 && rm -rf harness/__pycache__
ENV PATH=/opt/venv/bin:$PATH
ENTRYPOINT ["failover-lab"]
CMD ["demo", "--backend", "docker"]
