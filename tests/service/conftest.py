"""One running `rnclassifier serve` on the shared trained bundle, for the service's tests: a
real process on a free loopback port, with a token, its uploads in a folder the tests watch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from .service_client import TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def service(trained, tmp_path_factory):
    """The service's URL, token, upload folder (its TMPDIR) and log file."""
    folder = tmp_path_factory.mktemp("service")
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    uploads = folder / "tmp"
    uploads.mkdir()
    log = folder / "service.log"
    port = free_port()
    command = [
        sys.executable, "-m", "rnclassifier.cli", "serve",
        "--model", str(trained["bundle"]), "--port", str(port),
        "--token-file", str(token_file), "--workers", "2", "--max-upload-mb", "64",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(uploads)},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the service did not start:\n{log.read_text()}")
        time.sleep(0.3)
    yield {"url": url, "token": TOKEN, "uploads": uploads, "log": log, "process": process}
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
