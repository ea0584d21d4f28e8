"""The admission webhook: AdmissionReview in, verdict or JSON Patch out, served over TLS.

``review.py`` decides (no I/O, shared with ``fluxwarden review``); ``app.py`` is the Starlette
application; ``server.py`` runs it on uvicorn with certificate reloading and metrics. Errors are
the small hierarchy in ``errors.py``.
"""
