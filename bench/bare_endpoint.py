"""The webhook's physical limit: Starlette on uvicorn over TLS that parses the AdmissionReview and allows it.

Everything fluxwarden's server does that is not fluxwarden's own work is here, configured the same
way (uvicorn settings of ``fluxwarden.webhook.server``, the same certificate, TLS 1.2 or later via
the same ``harden``), so the gap between the two is what fluxwarden's code costs. Run as
``python -m bench.bare_endpoint --port P --cert-file tls.crt --key-file tls.key``.
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fluxwarden.webhook.server import ServeOptions
from fluxwarden.webhook.tls import harden


async def review(request: Request) -> Response:
    """Parse the whole body, as any webhook must, and allow it."""
    uid = json.loads(await request.body())["request"]["uid"]
    return JSONResponse(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, "allowed": True}}
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/validate", review, methods=["POST"]),
            Route("/mutate", review, methods=["POST"]),
            Route("/readyz", healthz, methods=["GET"]),
        ]
    )


def uvicorn_config(app: Starlette, host: str, port: int, cert_file: str, key_file: str) -> uvicorn.Config:
    """The uvicorn settings ``WebhookServer._uvicorn_config`` uses, with ``ServeOptions``' defaults."""
    defaults = ServeOptions  # class attributes hold the dataclass defaults
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
        access_log=False,
        log_config=None,
        timeout_keep_alive=int(defaults.keep_alive),
        timeout_graceful_shutdown=int(defaults.shutdown_grace),
        server_header=False,
    )
    config.load()
    assert config.ssl is not None
    harden(config.ssl)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-file", required=True)
    parser.add_argument("--key-file", required=True)
    args = parser.parse_args()
    uvicorn.Server(uvicorn_config(create_app(), args.host, args.port, args.cert_file, args.key_file)).run()


if __name__ == "__main__":
    main()
