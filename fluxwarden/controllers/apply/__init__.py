"""Server-side apply as a tenant, drift repair, prune, inventory and health: shared by kustomize and helm."""
