"""Shared pytest fixtures: Kurir's Entra ID emulator, started once per test session.

The `emulator` fixture starts the real emulator binary (env KURIR_BIN, else `target/debug/kurir
emulator` when that subcommand exists, else the example binary `target/debug/examples/emulator`,
built if missing) on a random 127.x.y.z address with a temporary state dir, plus the :443 user
realm listener MSAL for Python needs for ROPC. It returns the emulator's JSON line as a dict
(`base_url`, `authority`, `tenant_id`, `client_id`, `client_secret`, `ca_path`, `user`, …) and
points REQUESTS_CA_BUNDLE / SSL_CERT_FILE at the emulator's CA for the whole test process.

A distinct loopback address per session lets several test runs (several engineers, CI) each own
a :443 at the same time. If :443 cannot be bound (not root, or taken), the emulator starts
without it and `emulator["userrealm_port"]` is None; tests that need it fail with the reason
(or skip, only when KURIR_ALLOW_NO_USERREALM=1 is set explicitly).
"""

import json
import os
import random
import select
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def _emulator_command():
    explicit = os.environ.get("KURIR_BIN")
    if explicit:
        # KURIR_BIN names the kurir binary (subcommand `emulator`) or the example binary.
        return [explicit, "emulator"] if Path(explicit).name == "kurir" else [explicit]
    kurir = REPO / "target" / "debug" / "kurir"
    if kurir.exists():
        probe = subprocess.run([str(kurir), "emulator", "--help"], capture_output=True, text=True)
        if probe.returncode == 0 and "--state-dir" in probe.stdout:
            return [str(kurir), "emulator"]
    example = REPO / "target" / "debug" / "examples" / "emulator"
    if not example.exists():
        build = subprocess.run(
            ["cargo", "build", "-q", "-p", "kurir-emulator", "--example", "emulator"],
            cwd=REPO, capture_output=True, text=True)
        if build.returncode != 0:
            pytest.fail(f"building the emulator example failed:\n{build.stderr}")
    return [str(example)]


def _start(cmd, state_dir, listen_ip, userrealm):
    args = cmd + ["--listen", f"{listen_ip}:0", "--state-dir", str(state_dir)]
    if userrealm:
        args += ["--userrealm-port", "443"]
    log = open(state_dir / "emulator.log", "ab")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    deadline = time.monotonic() + START_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    if not line:
        proc.kill()
        proc.wait()
        log.close()
        return None, (state_dir / "emulator.log").read_text(errors="replace")
    info = json.loads(line)
    info["_process"] = proc
    info["_log"] = log
    return info, ""


@pytest.fixture(scope="session")
def emulator():
    cmd = _emulator_command()
    state_dir = Path(tempfile.mkdtemp(prefix="kurir-pytest-emulator-"))
    listen_ip = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
    info, log = _start(cmd, state_dir, listen_ip, userrealm=True)
    if info is None:
        # Most likely :443 is not ours to bind; everything but MSAL's ROPC works without it.
        info, log2 = _start(cmd, state_dir, listen_ip, userrealm=False)
        if info is None:
            pytest.fail(f"the emulator did not start ({' '.join(cmd)}):\n{log}\n{log2}")
        info["userrealm_error"] = log
    proc = info.pop("_process")
    logfile = info.pop("_log")
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    os.environ["REQUESTS_CA_BUNDLE"] = info["ca_path"]
    os.environ["SSL_CERT_FILE"] = info["ca_path"]
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logfile.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(state_dir, ignore_errors=True)


class EmulatorOps:
    """The emulator's /_emulator test endpoints (counters, faults, device code hooks)."""

    def __init__(self, info):
        self.base = info["base_url"]
        self.ctx = ssl.create_default_context(cafile=info["ca_path"])

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def counters(self):
        return self.call("GET", "/_emulator/counters")

    def faults(self, **knobs):
        return self.call("POST", "/_emulator/faults", knobs)

    def reset(self):
        return self.call("POST", "/_emulator/reset", {})

    def approve(self, user_code, username):
        return self.call("POST", "/_emulator/devicecode/approve",
                         {"user_code": user_code, "username": username})

    def decline(self, user_code):
        return self.call("POST", "/_emulator/devicecode/decline", {"user_code": user_code})


@pytest.fixture(scope="session")
def emulator_ops(emulator):
    return EmulatorOps(emulator)
