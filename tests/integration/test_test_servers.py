"""The loopback git (HTTP, ssh) and Helm repository servers answer the real git and helm clients.

Source-controller tests rely on these servers behaving like real ones; this proves it with the same
clients the controller runs, including the failure paths (bad credentials, unknown host key).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.git_server import GitHttpServer, GitRepo, isolated_git_env, run_git
from tests.support.helm_repo import HelmRepoServer, run_helm
from tests.support.ssh_server import SshGitServer, generate_ed25519_key
from tests.support.wait import eventually


def git_client(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a git client command that may fail, keeping its output for the assertion."""
    return subprocess.run(["git", *args], env=isolated_git_env(env), capture_output=True, text=True, timeout=60)


def with_credentials(url: str, username: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}@{parts.netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def ls_remote(url: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """ref name -> SHA, as a controller resolving a ref sees them."""
    lines = run_git("ls-remote", url, env=env).splitlines()
    return {ref: sha for sha, ref in (line.split("\t") for line in lines)}


@pytest.fixture
def work(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "work")


def populate(work: GitRepo) -> dict[str, str]:
    """Two commits on main (the second deletes a file), a feature branch, a lightweight and an annotated tag."""
    first = work.commit(
        {"README.md": "hello\n", "deploy/app.yaml": "kind: ConfigMap\n", "old.txt": "gone soon\n"}, message="first"
    )
    work.tag("v1.0.0")
    second = work.commit({"README.md": "hello again\n"}, delete=["old.txt"], message="second")
    work.tag("v1.1.0", message="release 1.1.0")
    work.branch("feature", checkout=True)
    feature = work.commit({"feature.txt": b"\x00binary\xff"}, message="feature")
    work.checkout("main")
    return {"first": first, "second": second, "feature": feature}


def test_git_repo_helper_is_deterministic(tmp_path: Path) -> None:
    shas = [GitRepo(tmp_path / name).commit({"a.txt": "a\n"}) for name in ("one", "two")]
    assert shas[0] == shas[1]
    assert len(shas[0]) == 40


def test_git_http_anonymous_clone_ls_remote_and_refs(tmp_path: Path, work: GitRepo) -> None:
    shas = populate(work)
    with GitHttpServer(tmp_path / "repos") as server:
        url = server.create_repo("app")
        work.push(server.repo_path("app"))

        refs = ls_remote(url)
        assert refs["HEAD"] == refs["refs/heads/main"] == shas["second"]
        assert refs["refs/heads/feature"] == shas["feature"]
        assert refs["refs/tags/v1.0.0"] == shas["first"]
        assert refs["refs/tags/v1.1.0^{}"] == shas["second"]  # annotated: the tag object peels to the commit
        assert refs["refs/tags/v1.1.0"] != shas["second"]

        clone = tmp_path / "clone"
        run_git("clone", "-q", url, str(clone))
        assert (clone / "README.md").read_text() == "hello again\n"
        assert not (clone / "old.txt").exists()
        assert run_git("rev-parse", "HEAD", cwd=clone) == shas["second"]

        shallow = tmp_path / "shallow"
        run_git("clone", "-q", "--depth", "1", "--branch", "feature", url, str(shallow))
        assert (shallow / "feature.txt").read_bytes() == b"\x00binary\xff"

        by_sha = tmp_path / "by-sha"  # how a controller checks out spec.ref.commit
        run_git("init", "-q", str(by_sha))
        run_git("fetch", "-q", "--depth", "1", url, shas["first"], cwd=by_sha)
        assert run_git("rev-parse", "FETCH_HEAD", cwd=by_sha) == shas["first"]

        push = git_client("-C", str(clone), "push", url, "HEAD:refs/heads/anonymous")
        assert push.returncode != 0, "an anonymous server must refuse pushes, as git http-backend does"
        assert "403" in push.stderr

    assert any(request.headers.get("git-protocol") == "version=2" for request in server.requests)
    assert server.errors == []


def test_git_http_basic_auth(tmp_path: Path, work: GitRepo) -> None:
    shas = populate(work)
    with GitHttpServer(tmp_path / "repos", username="flux", password="s3cr:t/pw") as server:
        url = server.create_repo("private")
        work.push(server.repo_path("private"))

        run_git("clone", "-q", with_credentials(url, "flux", "s3cr:t/pw"), str(tmp_path / "ok"))
        assert run_git("rev-parse", "HEAD", cwd=tmp_path / "ok") == shas["second"]

        wrong = git_client("clone", with_credentials(url, "flux", "wrong"), str(tmp_path / "wrong"))
        assert wrong.returncode != 0
        assert "Authentication failed" in wrong.stderr
        other_user = git_client("ls-remote", with_credentials(url, "someone", "s3cr:t/pw"))
        assert other_user.returncode != 0
        anonymous = git_client("ls-remote", url)
        assert anonymous.returncode != 0
        assert "terminal prompts disabled" in anonymous.stderr

    refused = [request for request in server.requests if request.refused]
    assert len(refused) >= 3
    assert all(request.user is None for request in refused)


def test_git_http_chunked_push_and_gzip_fetch(tmp_path: Path, work: GitRepo) -> None:
    """Large pushes arrive chunked and many-want fetches arrive gzipped; both must reach http-backend intact."""
    work.commit({"README.md": "start\n"})
    for index in range(30):  # 30 distinct branch tips: the clone's want lines exceed git's 1 KiB gzip threshold
        work.commit({f"branches/{index}.txt": f"{index}\n"})
        work.branch(f"b{index:02d}")
    with GitHttpServer(tmp_path / "repos", username="flux", password="pw") as server:
        url = with_credentials(server.create_repo("big"), "flux", "pw")
        work.push(server.repo_path("big"))

        clone = tmp_path / "clone"
        run_git("clone", "-q", "--no-single-branch", url, str(clone))
        assert run_git("rev-parse", "origin/b29", cwd=clone) == work.rev_parse("b29")

        blob = os.urandom(3 * 1024 * 1024)  # over http.postBuffer (1 MiB): git switches to chunked encoding
        pusher = GitRepo(clone)
        pushed = pusher.commit({"blob.bin": blob}, message="big blob")
        run_git("push", "-q", url, "HEAD:refs/heads/main", cwd=clone)

        check = tmp_path / "check"
        run_git("clone", "-q", "--depth", "1", url, str(check))
        assert run_git("rev-parse", "HEAD", cwd=check) == pushed
        assert (check / "blob.bin").read_bytes() == blob

    encodings = [request.headers for request in server.requests if request.method == "POST"]
    assert any(headers.get("content-encoding") == "gzip" for headers in encodings)
    assert any(headers.get("transfer-encoding") == "chunked" for headers in encodings)
    assert server.errors == []


def test_git_over_ssh_with_known_hosts(tmp_path: Path, work: GitRepo) -> None:
    shas = populate(work)
    known_hosts = tmp_path / "known_hosts"
    empty_known_hosts = tmp_path / "empty_known_hosts"
    empty_known_hosts.write_text("")
    stranger_key = tmp_path / "stranger"
    generate_ed25519_key(stranger_key, "not-authorized")

    with SshGitServer(tmp_path / "ssh-repos") as server:
        sshd_pid = int((server.state_dir / "sshd.pid").read_text())
        url = server.create_repo("app")
        assert url == f"ssh://{server.user}@127.0.0.1:{server.port}{tmp_path.resolve()}/ssh-repos/app.git"
        work.push(server.repo_path("app"))
        known_hosts.write_text(server.known_hosts)
        assert server.known_hosts.startswith(f"[127.0.0.1]:{server.port} ssh-ed25519 AAAA")
        assert server.client_private_key.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")

        trusted = {"GIT_SSH_COMMAND": server.ssh_command(known_hosts)}
        assert ls_remote(url, env=trusted)["refs/tags/v1.1.0^{}"] == shas["second"]

        unknown_host = git_client("ls-remote", url, env={"GIT_SSH_COMMAND": server.ssh_command(empty_known_hosts)})
        assert unknown_host.returncode != 0
        assert "Host key verification failed" in unknown_host.stderr

        stranger = git_client("ls-remote", url, env={"GIT_SSH_COMMAND": server.ssh_command(known_hosts, stranger_key)})
        assert stranger.returncode != 0
        assert "Permission denied (publickey)" in stranger.stderr

        clone = tmp_path / "clone"  # still served after the refused attempts
        run_git("clone", "-q", "--branch", "feature", url, str(clone), env=trusted)
        assert run_git("rev-parse", "HEAD", cwd=clone) == shas["feature"]
        assert (clone / "README.md").read_text() == "hello again\n"

    assert not Path(f"/proc/{sshd_pid}").exists()
    assert not server.state_dir.exists()


def test_helm_repository_serves_real_charts(tmp_path: Path, test_binaries: Path) -> None:
    with HelmRepoServer(tmp_path / "charts") as repo:
        repo.add_chart("podinfo", "1.0.0", {"replicas": 1})
        archive = repo.add_chart("podinfo", "1.1.0", {"replicas": 2, "greeting": "hi"}, app_version="6.0.0")

        with httpx.Client(timeout=10) as client:
            index = yaml.safe_load(client.get(repo.index_url).raise_for_status().text)
            entries = {entry["version"]: entry for entry in index["entries"]["podinfo"]}
            assert set(entries) == {"1.0.0", "1.1.0"}
            assert entries["1.1.0"]["urls"] == [repo.chart_url("podinfo", "1.1.0")]
            assert entries["1.1.0"]["digest"] == hashlib.sha256(archive.read_bytes()).hexdigest()
            assert entries["1.1.0"]["appVersion"] == "6.0.0"

            pulled = tmp_path / "pulled"
            pulled.mkdir()  # helm pull does not create its destination
            run_helm("pull", repo.chart_url("podinfo", "1.1.0"), "--destination", str(pulled))
            chart = yaml.safe_load(run_helm("show", "chart", str(pulled / "podinfo-1.1.0.tgz")))
            assert (chart["name"], chart["version"]) == ("podinfo", "1.1.0")
            rendered = yaml.safe_load(run_helm("template", "demo", str(pulled / "podinfo-1.1.0.tgz")))
            assert rendered["kind"] == "ConfigMap"
            assert rendered["metadata"]["name"] == "demo-podinfo"
            assert yaml.safe_load(rendered["data"]["values"]) == {"replicas": 2, "greeting": "hi"}

            repo.corrupt_index()
            with pytest.raises(yaml.YAMLError):
                yaml.safe_load(client.get(repo.index_url).raise_for_status().text)
            repo.reindex()
            repo.remove_chart("podinfo", "1.0.0")
            index = yaml.safe_load(client.get(repo.index_url).raise_for_status().text)
            assert [entry["version"] for entry in index["entries"]["podinfo"]] == ["1.1.0"]


def test_helm_repository_relative_urls(tmp_path: Path, test_binaries: Path) -> None:
    repo = HelmRepoServer(tmp_path / "charts", absolute_urls=False)
    repo.add_chart("app", "0.1.0")  # before start: the index is built when the URL is known
    with repo, httpx.Client(timeout=10) as client:
        index = yaml.safe_load(client.get(repo.index_url).raise_for_status().text)
        assert index["entries"]["app"][0]["urls"] == ["app-0.1.0.tgz"]
        assert client.get(f"{repo.url}/app-0.1.0.tgz").raise_for_status().content[:2] == b"\x1f\x8b"


def test_helm_repository_basic_auth(tmp_path: Path, test_binaries: Path) -> None:
    with HelmRepoServer(tmp_path / "charts", username="helm", password="pa:ss") as repo:
        repo.add_chart("private", "2.0.0")
        with httpx.Client(timeout=10) as client:
            challenge = client.get(repo.index_url)
            assert challenge.status_code == 401
            assert challenge.headers["WWW-Authenticate"].startswith("Basic ")
            assert client.get(repo.index_url, auth=("helm", "nope")).status_code == 401
            index = yaml.safe_load(client.get(repo.index_url, auth=("helm", "pa:ss")).raise_for_status().text)
            assert index["entries"]["private"][0]["version"] == "2.0.0"

        url = repo.chart_url("private", "2.0.0")
        (tmp_path / "ok").mkdir()
        (tmp_path / "no").mkdir()
        run_helm("pull", url, "--username", "helm", "--password", "pa:ss", "--destination", str(tmp_path / "ok"))
        assert (tmp_path / "ok" / "private-2.0.0.tgz").is_file()
        with pytest.raises(subprocess.CalledProcessError) as refused:
            run_helm("pull", url, "--username", "helm", "--password", "bad", "--destination", str(tmp_path / "no"))
        assert "401" in refused.value.stderr


def test_ssh_server_stop_ends_live_sessions(tmp_path: Path) -> None:
    """A session still open at stop() must not outlive the server (sshd forks sessions into new sessions)."""
    marker = "sleep 3071"
    with SshGitServer(tmp_path / "ssh-repos") as server:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(server.known_hosts)
        command = [*shlex.split(server.ssh_command(known_hosts)), "-p", str(server.port), f"{server.user}@127.0.0.1"]
        with subprocess.Popen([*command, marker], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as client:
            eventually(lambda: _require(_processes_running(marker)), retry_on=_is_lookup_error, timeout=15)
            server.stop()
            assert client.wait(timeout=10) == 255  # the connection was closed by the server
    assert not _processes_running(marker)


def _processes_running(command_line: str) -> list[int]:
    """Live (non-zombie) processes whose whole command line is ``command_line``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            running = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue
        if running == command_line.encode():
            found.append(int(entry.name))
    return found


def _is_lookup_error(error: BaseException) -> bool:
    return isinstance(error, LookupError)


def _require(pids: list[int]) -> None:
    if not pids:
        raise LookupError("no such process yet")
