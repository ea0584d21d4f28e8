"""OCIRepository sources: a small OCI distribution client, the reconciler, and Flux-content artifacts.

- ``media``: the media types of OCI/Docker manifests, Flux artifacts and Helm charts;
- ``reference``: ``oci://host/repo`` URLs, tags and digests;
- ``auth``: ``WWW-Authenticate`` challenges and ``kubernetes.io/dockerconfigjson`` Secrets;
- ``registry``: the distribution API over httpx (token and basic auth, manifests, blobs, tags, push),
  every byte checked against its digest;
- ``spec``: the typed view of ``OCIRepository.spec`` and its unsupported fields;
- ``ocirepository``: the reconciler;
- ``push``: a Flux-content artifact built and pushed as ``flux push artifact`` does.
"""
