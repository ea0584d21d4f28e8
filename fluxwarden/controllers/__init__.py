"""The reconciler: a small runtime (``runtime``) and one package per Flux controller.

Controllers are reconcile functions of one object; the runtime watches, queues, retries, writes
status and events. Nothing here imports ``fluxwarden.webhook``.
"""
