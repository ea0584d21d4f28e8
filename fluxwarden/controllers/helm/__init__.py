"""Flux's helm controller: HelmRelease reconciled through the real helm v4 CLI, as the tenant."""
