"""The helm v4 post-renderer plugin fluxwarden ships: ``fluxwarden-kustomize/plugin.yaml`` runs this package.

``python -m fluxwarden.controllers.helm.plugin CONFIG`` reads the rendered manifests on stdin and prints
them post-rendered (see ``run``); ``fluxwarden.controllers.helm.postrender`` writes CONFIG.
"""
