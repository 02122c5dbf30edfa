"""Fixtures for the Python client's tests: a real coremlzd on loopback and
scratch copies of the shared models (never written in place)."""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

BUILD = os.environ["COREMLZ_BUILD_DIR"]
SHARED = os.environ.get("COREMLZ_SHARED_DIR", "")
SOURCE = os.environ["COREMLZ_SOURCE_DIR"]


class Daemon:
    """coremlzd on 127.0.0.1 with a free port, stopped by the fixture."""

    def __init__(self, *extra):
        self.log = tempfile.NamedTemporaryFile(prefix="coremlzd-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "",
             "--workers", "2", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        self.port = None
        while time.time() < deadline and self.port is None:
            with open(self.log.name) as f:
                m = re.search(r"serving gRPC on port (\d+)", f.read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("coremlzd did not start: " + open(self.log.name).read())
        self.address = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


@pytest.fixture(scope="module")
def server():
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture
def scratch():
    d = tempfile.mkdtemp(prefix="coremlz-py-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def demo_model():
    return os.path.join(SOURCE, "models/silero_vad/silero-vad-unified-v6.0.0.mlpackage")


def shared_model(*parts):
    path = os.path.join(SHARED, *parts)
    if not SHARED or not os.path.exists(path):
        pytest.skip(f"no {path}")
    return path


def cli():
    return os.path.join(BUILD, "clients/coremlz")
