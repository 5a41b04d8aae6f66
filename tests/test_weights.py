"""`reenact weights` and `reenact weights fetch`, against a loopback HTTP server: a download, a
wrong checksum, a connection dropped mid-body, a read-only cache, no server at all; the listing;
and the published registry against the names torchvision, face-alignment and reenact use."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reenact.weights import PUBLISHED
from tests.conftest import assert_clean_failure, reenact_command, run_reenact

PAYLOAD = bytes(range(256)) * 1200          # 300 KB: small, yet more than one socket read
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
PREFIX = DIGEST[:10]
WRONG_PREFIX = format(int(PREFIX, 16) ^ 1, "010x")
# torch.hub's check_hash reads the hash from the file name this way.
HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


class Handler(BaseHTTPRequestHandler):
    """/weights.bin: the payload; /dropped.bin: announces the payload's length, sends half, hangs up."""
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Handler.requests.append(self.path)
        if self.path not in ("/weights.bin", "/dropped.bin"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        body = PAYLOAD if self.path == "/weights.bin" else PAYLOAD[: len(PAYLOAD) // 2]
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """The base URL of a loopback server, shut down after the test."""
    Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def closed_port_url() -> str:
    """A loopback URL nothing listens on: 'no network' without depending on the machine's network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.bin"


def setup(root: Path, server: str) -> tuple[dict[str, str], Path]:
    """A registry file with test entries and an empty torch home under ``root``: (environment, cache folder)."""
    registry = root / "registry.toml"
    registry.write_text(
        f'[probe]\nfile = "probe-{PREFIX}.bin"\nurl = "{server}/weights.bin"\nsha256 = "{PREFIX}"\n'
        f'unlocks = "a test"\n'
        f'[wrong]\nfile = "wrong-{WRONG_PREFIX}.bin"\nurl = "{server}/weights.bin"\nsha256 = "{WRONG_PREFIX}"\n'
        f'[dropped]\nfile = "dropped-{PREFIX}.bin"\nurl = "{server}/dropped.bin"\nsha256 = "{PREFIX}"\n'
        f'[vgg19]\nurl = "{closed_port_url()}"\n')
    env = {"TORCH_HOME": str(root / "torch"), "REENACT_WEIGHTS_REGISTRY": str(registry), "no_proxy": "*",
           "NO_PROXY": "*"}
    return env, root / "torch" / "hub" / "checkpoints"


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.e2e
def test_fetch_downloads_checks_and_keeps(server, tmp_path):
    env, cache = setup(tmp_path, server)
    result = run_reenact("weights", "fetch", "probe", env=env)
    assert result.returncode == 0, result.stderr
    target = cache / f"probe-{PREFIX}.bin"
    assert target.read_bytes() == PAYLOAD
    assert files_in(cache) == [target.name]              # no temporary file left beside it
    assert f"saved {target}" in result.stderr

    again = run_reenact("weights", "fetch", "probe", env=env)
    assert again.returncode == 0 and "already present" in again.stderr, again.stderr
    assert Handler.requests == ["/weights.bin"]          # the second run downloaded nothing

    target.write_bytes(b"damaged")
    repaired = run_reenact("weights", "fetch", "probe", env=env)
    assert repaired.returncode == 0 and "downloading it again" in repaired.stderr, repaired.stderr
    assert target.read_bytes() == PAYLOAD


@pytest.mark.e2e
def test_wrong_checksum_is_not_saved(server, tmp_path):
    env, cache = setup(tmp_path, server)
    result = run_reenact("weights", "fetch", "wrong", env=env)
    assert_clean_failure(result, f"{server}/weights.bin", "checksum mismatch",
                         f"expected sha256 prefix {WRONG_PREFIX}, got {PREFIX}", "not saved")
    assert files_in(cache) == []


@pytest.mark.e2e
def test_dropped_connection_leaves_nothing(server, tmp_path):
    env, cache = setup(tmp_path, server)
    result = run_reenact("weights", "fetch", "dropped", env=env)
    target = cache / f"dropped-{PREFIX}.bin"
    assert_clean_failure(result, f"cannot download {server}/dropped.bin to {target}",
                         f"closed after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes")
    assert files_in(cache) == []


@pytest.mark.e2e
def test_no_network_names_the_url_and_the_path(server, tmp_path):
    """A published entry (its URL moved by the registry file to a port nothing listens on)."""
    env, cache = setup(tmp_path, server)
    registry = Path(env["REENACT_WEIGHTS_REGISTRY"]).read_text()
    url = re.search(r'\[vgg19\]\nurl = "(.*)"', registry).group(1)
    result = run_reenact("weights", "fetch", "vgg19", env=env)
    assert_clean_failure(result, f"cannot download {url} to {cache / 'vgg19-dcbb9e9d.pth'}", "refused")
    assert files_in(cache) == []


@pytest.mark.e2e
def test_read_only_cache_is_refused_before_downloading(server):
    """Root may write anywhere, so as root the command runs as nobody (setpriv)."""
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if as_nobody and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop privileges")
    root = Path(tempfile.mkdtemp(prefix="reenact weights "))
    try:
        root.chmod(0o755)
        env, cache = setup(root, server)
        cache.mkdir(parents=True)
        cache.chmod(0o555)
        result = subprocess.run([*as_nobody, *reenact_command(), "weights", "fetch", "probe"], capture_output=True,
                                text=True, timeout=120, env={**os.environ, "COLUMNS": "200", "HOME": str(root), **env})
        assert_clean_failure(result, str(cache / f"probe-{PREFIX}.bin"), f"no permission to write in {cache}")
        assert Handler.requests == []
        assert files_in(cache) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
def test_listing_says_what_is_present(server, tmp_path):
    env, cache = setup(tmp_path, server)
    cache.mkdir(parents=True)
    (cache / f"probe-{PREFIX}.bin").write_bytes(PAYLOAD)
    (cache / f"dropped-{PREFIX}.bin").write_bytes(b"not it")
    for command in (("weights",), ("weights", "list")):
        result = run_reenact(*command, env=env)
        assert result.returncode == 0, result.stderr
        blocks = result.stderr.split("\n\n")[1:]
        rows = {block.split()[0]: " ".join(block.split()) for block in blocks}
        assert "present" in rows["probe"] and "a test" in rows["probe"]
        assert "checksum differs" in rows["dropped"]
        assert "missing" in rows["vgg19"] and "perceptual loss" in rows["vgg19"]
        assert "pip install --no-deps lpips" in rows["lpips"] or "lpips (installed)" in rows["lpips"]
    assert Handler.requests == []                        # listing never downloads


@pytest.mark.e2e
def test_bad_requests_are_one_line(tmp_path):
    result = run_reenact("weights", "fetch", "vgg", env={"TORCH_HOME": str(tmp_path)})
    assert_clean_failure(result, "unknown weights vgg", "vgg19, lpips, 2dfan, all")
    registry = tmp_path / "registry.toml"
    registry.write_text('[vgg19]\nsha256 = "00"\n')
    result = run_reenact("weights", env={"TORCH_HOME": str(tmp_path), "REENACT_WEIGHTS_REGISTRY": str(registry)})
    assert_clean_failure(result, f"{registry}: vgg19", "takes only url")


def test_published_names_match_their_users():
    """Each file is named as its URL, carries its hash the way torch.hub reads it, and is the
    name reenact's VGG loader and face-alignment look for."""
    from reenact.models.vgg import TORCHVISION_VGG19_FILENAME

    for entry in PUBLISHED.values():
        assert entry.url.rsplit("/", 1)[1] == entry.file
        assert HASH_IN_NAME.search(entry.file).group(1) == entry.sha256
    assert PUBLISHED["vgg19"].file == TORCHVISION_VGG19_FILENAME
    if importlib.util.find_spec("face_alignment"):
        from face_alignment import api

        assert api.models_urls["2DFAN-4"] == PUBLISHED["2dfan"].url
