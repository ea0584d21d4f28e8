"""The chart version of a release from an OCIRepository, as helm-controller's mutateChartWithSourceRevision."""

from __future__ import annotations

import re

import pytest

from fluxwarden.controllers.helm.oci_version import source_version

HEX = "0123456789abcdef" * 4


def test_semver_tag_must_match_and_lends_its_digest() -> None:
    assert source_version("1.2.3", f"1.2.3@sha256:{HEX}") == "1.2.3+0123456789ab"
    assert source_version("1.2.3+build", f"1.2.3_other@sha256:{HEX}") == "1.2.3+0123456789ab"  # metadata replaced
    assert source_version("v1.2.3-rc.1", f"1.2.3-rc.1@sha256:{HEX}") == "1.2.3-rc.1+0123456789ab"
    with pytest.raises(ValueError, match=re.escape("artifact revision 1.2.4 does not match chart version 1.2.3")):
        source_version("1.2.3", f"1.2.4@sha256:{HEX}")


def test_other_revisions_lend_only_their_digest() -> None:
    assert source_version("0.1.0", f"latest@sha256:{HEX}") == "0.1.0+0123456789ab"
    assert source_version("0.1.0", f"sha256:{HEX}") == "0.1.0+0123456789ab"
    with pytest.raises(ValueError, match="invalid chart version"):
        source_version("not-semver", f"sha256:{HEX}")
    with pytest.raises(ValueError, match="invalid artifact revision"):
        source_version("0.1.0", "sha256:abc")
