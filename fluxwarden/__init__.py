"""fluxwarden: Flux multi-tenancy as an admission webhook, a reconciler and a CLI.

Layers, imported one way only (checked by import-linter in ``make test``):
``tenancy`` (pure rules) <- ``certs`` / ``webhook`` / ``controllers`` <- ``cli``.
"""

__version__ = "0.1.0"
