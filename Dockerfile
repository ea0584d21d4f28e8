# fluxwarden: the admission webhook (and, later, the reconciler) as a non-root container.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fluxwarden ./fluxwarden
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin fluxwarden
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["fluxwarden"]
CMD ["serve", "--tls-cert-file=/certs/tls.crt", "--tls-private-key-file=/certs/tls.key"]
