"""Errors of the webhook layer, each carrying the HTTP status it is answered with.

::

    WebhookError
    ├── BadReview          400: the body is not a usable AdmissionReview
    ├── RequestTimeout     408: the body did not arrive in time
    ├── PayloadTooLarge    413: the body is over the size limit
    └── InternalError      500: a bug met while judging (logged with its traceback)

They are plain data; ``app.py`` turns them into JSON responses in one handler.
"""

from __future__ import annotations


class WebhookError(Exception):
    """Base class: ``status_code`` and a one-line ``detail`` for the caller."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadReview(WebhookError):
    status_code = 400


class RequestTimeout(WebhookError):
    status_code = 408


class PayloadTooLarge(WebhookError):
    status_code = 413


class InternalError(WebhookError):
    status_code = 500
