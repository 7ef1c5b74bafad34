# SPDX-License-Identifier: MIT
"""Starts a real `parallama serve` process on a free loopback port for the serve tests."""
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parallama_bin():
    return os.environ.get("PARALLAMA_BIN", os.path.join(ROOT, "build", "bin", "parallama"))


def demo_model():
    path = os.environ.get("PARALLAMA_DEMO_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    return path if os.path.exists(path) else None


def require_data():
    return os.environ.get("PARALLAMA_REQUIRE_TEST_DATA") == "1"


def need(what, ok):
    """Skips the test when `ok` is false (fails it under PARALLAMA_REQUIRE_TEST_DATA=1)."""
    import pytest
    if ok:
        return
    if require_data():
        pytest.fail(f"missing for the tests: {what}")
    pytest.skip(f"{what} not available")


class Server:
    """`parallama serve -m MODEL --port 0 ARGS...`; .url is its base URL once it listens.
    `launcher` goes before the command (mpirun and its flags), `env` replaces the environment."""

    def __init__(self, model, *args, threads=None, launcher=(), env=None):
        cmd = [*launcher, parallama_bin(), "serve", "-m", model, "--port", "0", *args]
        if threads:
            cmd += ["-t", str(threads)]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.log = []
        deadline = time.time() + 60
        port = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            self.proc.kill()
            raise RuntimeError("parallama serve did not start:\n" + "".join(self.log) + self.proc.stderr.read())
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def metrics(self):
        """The Prometheus text as {name{labels}: value}."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def wait_idle(self, timeout=15):
        """Waits until no sequence runs, none is queued and every KV block is back; returns the metrics."""
        deadline = time.time() + timeout
        m = self.metrics()
        while time.time() < deadline:
            m = self.metrics()
            if m["parallama_running_sequences"] == 0 and m["parallama_queue_depth"] == 0 and m["parallama_kv_blocks_used"] == 0:
                return m
            time.sleep(0.05)
        raise AssertionError(f"server not idle after {timeout} s: running {m['parallama_running_sequences']}, "
                             f"queued {m['parallama_queue_depth']}, kv blocks {m['parallama_kv_blocks_used']}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("parallama serve did not exit within %s s of the signal" % timeout)
        self._drain.join(timeout=5)
        return self.proc.returncode
