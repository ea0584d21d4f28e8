from __future__ import annotations

import pytest

from fluxwarden.cli.main import main


def test_bootstrap_rejects_a_renew_before_that_is_no_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "bootstrap", "--renew-before=30d"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fluxwarden certs bootstrap: --renew-before: '30d' is not a duration; use e.g. 30s, 5m, 1h30m"
