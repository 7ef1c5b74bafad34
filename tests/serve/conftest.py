# SPDX-License-Identifier: MIT
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_proc import Server, demo_model, need as _need  # noqa: E402


@pytest.fixture(scope="session")
def model():
    m = demo_model()
    _need("the demo model (scripts/fetch-model.sh)", m is not None)
    try:
        import openai  # noqa: F401
    except ImportError:
        _need("the openai Python package (scripts/setup.sh --test)", False)
    return m


@pytest.fixture(scope="session")
def server(model):
    # A 512-token context (so that a long prompt can exceed it), 4 slots, a 64 KiB body limit.
    s = Server(model, "-c", "512", "--parallel", "4", "--max-body", "0.0625", "--alias", "smollm2")
    yield s
    assert s.stop() == 0, "".join(s.log)


@pytest.fixture()
def client(server):
    import openai
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
