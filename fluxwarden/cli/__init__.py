"""The ``fluxwarden`` command: thin shells over ``tenancy``, ``webhook`` and ``certs``."""
