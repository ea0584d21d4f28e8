# fluxwarden: the admission webhook and the reconciler, as a non-root container.
# helm and kustomize are built from the same pinned Go modules as the tests use: helm v4 from tests/helm
# (its own module: it needs newer Kubernetes libraries), kustomize from tests/cluster.
FROM golang:1.26-bookworm AS tools
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
WORKDIR /src/helm
COPY tests/helm/go.mod tests/helm/go.sum ./
RUN go mod download
COPY tests/helm/ ./
# `helm version` reports the pinned version, as tests/cluster/build.sh stamps it.
RUN v=$(awk '{for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v4") {print $(i+1); exit}}' go.mod) && \
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$v" -o /out/helm \
      helm.sh/helm/v4/cmd/helm
WORKDIR /src/cluster
COPY tests/cluster/go.mod tests/cluster/go.sum ./
RUN go mod download
COPY tests/cluster/ ./
RUN go build -trimpath -ldflags "-s -w" -o /out/kustomize sigs.k8s.io/kustomize/kustomize/v5

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fluxwarden ./fluxwarden
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=tools /out/helm /out/kustomize /usr/local/bin/
COPY --from=build /install /usr/local
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin fluxwarden
USER 65532:65532
# The manifests mount the root filesystem read-only and an emptyDir at /tmp: git, helm and kustomize
# keep whatever they write under $HOME there.
ENV HOME=/tmp
# webhook: 8443 https, 8080 metrics. controllers: 9090 artifacts, 9091 events, 9292 Receivers'
# webhooks, 8080 metrics, 9440 probes.
EXPOSE 8443 8080 9090 9091 9292 9440
ENTRYPOINT ["fluxwarden"]
CMD ["serve", "--tls-cert-file=/certs/tls.crt", "--tls-private-key-file=/certs/tls.key"]
