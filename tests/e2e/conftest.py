"""Starts the real `agm` binary (`agm demo`: the gateway plus its simulated Google) for
the SDK tests, and checks that it shuts down cleanly afterwards."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agm exited early with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if json.load(r).get("status") == "ready":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("agm demo did not become ready in time")


@pytest.fixture(scope="session")
def agm_demo():
    binary = os.environ.get("AGM_BIN", "target/debug/agm")
    home = tempfile.mkdtemp(prefix="agm-e2e-")
    port = free_port()
    env = {
        **os.environ,
        "HOME": home,
        "XDG_CONFIG_HOME": os.path.join(home, "config"),
        "XDG_DATA_HOME": os.path.join(home, "data"),
        "RUST_LOG": "warn",
    }
    env.pop("AGM_CONFIG", None)
    proc = subprocess.Popen(
        [binary, "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert code == 0, f"agm demo exited {code} on SIGTERM: {err}"
    assert f"agm demo is running on {url}" in out, out
    # Nothing secret is printed or logged.
    assert "demo-refresh" not in out
