"""The chart version a ``spec.version`` range picks among an OCI chart's tags, read with the registry API.

As Flux's ``OCIChartRepository``: the repository's tags are listed (helm writes a version's ``+`` as
``_`` in a tag: read back as ``+``), an exact string match wins, else the highest tag that satisfies the
constraint (``*`` or empty: the highest stable one). Listing costs no chart download, so an unchanged
range downloads nothing; the chosen version is then pulled with helm (source/helm_oci.py). The registry
client is the OCIRepository's (source/oci/registry.py): Basic or Bearer auth, credentials only to the
registry's origin (or a token realm over HTTPS), TLS 1.2+ with the certSecretRef's CA and client pair.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fluxwarden.controllers.runtime.errors import Failure
from fluxwarden.controllers.source.api import HelmRepositorySpec
from fluxwarden.controllers.source.helm_registry import RegistryCredentials, registry_host
from fluxwarden.controllers.source.oci.auth import Login
from fluxwarden.controllers.source.oci.reference import Repository
from fluxwarden.controllers.source.oci.registry import Registry, RegistryError, Tls
from fluxwarden.controllers.source.versions import best_match

# The fields to fix are the HelmRepository's, not the HelmChart's.
AUTH_HINT = "check the credentials for this host in the Secret named by the HelmRepository's spec.secretRef"
TLS_HINT = "add the CA that signed it as ca.crt to the Secret named by the HelmRepository's spec.certSecretRef"
CERT_HINT = "set tls.crt and tls.key in the Secret named by the HelmRepository's spec.certSecretRef"


def chart_tags(spec: HelmRepositorySpec, credentials: RegistryCredentials, chart: str) -> list[str]:
    """The chart's tags as versions (``_`` back to ``+``); a Failure with Flux's reason when listing fails."""
    path = urlsplit(spec.url).path.strip("/")
    repository = Repository(registry_host(spec.url), f"{path}/{chart}".strip("/"))
    login = Login(credentials.username, credentials.password or "") if credentials.username else None
    tls = None
    if credentials.ca_pem or credentials.cert_pem:
        tls = Tls(credentials.ca_pem, credentials.cert_pem, credentials.key_pem)
    reference = f"{spec.url}/{chart}"
    try:
        with Registry(
            repository, login=login, tls=tls, plain_http=spec.insecure, timeout=spec.timeout,
            auth_hint=AUTH_HINT, tls_hint=TLS_HINT, cert_hint=CERT_HINT,
        ) as registry:  # fmt: skip
            tags = registry.tags()
    except RegistryError as exc:
        if exc.authentication or exc.untrusted:
            raise Failure(
                "AuthenticationFailed", f"failed to authenticate with the Helm repository: {exc.message}"
            ) from None
        raise Failure(
            "ChartPullError",
            f"chart pull error: failed to get chart version for remote reference: could not get tags for "
            f"'{reference}': {exc.message}",
        ) from None
    return [tag.replace("_", "+") for tag in tags]


def resolve(spec: HelmRepositorySpec, credentials: RegistryCredentials, chart: str, version: str) -> str:
    """The version ``version`` picks among the chart's tags."""
    tags = chart_tags(spec, credentials, chart)
    reference = f"{spec.url}/{chart}"
    if not tags:
        raise Failure(
            "ChartPullError", f"chart pull error: unable to locate any tags in provided repository: {reference}"
        )
    if version in tags:
        return version
    try:
        chosen = best_match(version or "*", tags)
    except ValueError as exc:
        raise Failure("ChartPullError", f"chart pull error: spec.version '{version}': {exc}") from None
    if chosen is None:
        raise Failure(
            "ChartPullError",
            f"chart pull error: failed to get chart version for remote reference '{reference}': "
            f"could not locate a version matching provided version string {version}",
        )
    return chosen
