# SPDX-License-Identifier: MIT
"""`parallama serve` driven by the official openai Python client (and raw HTTP for what a client
library would not send): completions, chat, streaming, stop sequences, usage, n, errors, auth,
a client going away mid-stream, a full queue, and shutdown on SIGTERM."""
import http.client
import json
import signal
import subprocess
import threading
import time

import openai
import pytest

from server_proc import Server, parallama_bin

PROMPT = "The capital of France is"
QUESTION = "What is the capital of France?"


def run_cli(*args, stdin=None):
    r = subprocess.run([parallama_bin(), *args], input=stdin, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def raw(server, method, path, body=None, headers=None):
    """(status, parsed JSON or text) for one HTTP request."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    data = body if isinstance(body, (bytes, type(None))) else body.encode()
    c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


def assert_api_error(status, body, want_status, param=None, code=None):
    assert status == want_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    e = body["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["message"], e
    if param is not None:
        assert e["param"] == param, e
    if code is not None:
        assert e["code"] == code, e


# ---- generation ---------------------------------------------------------------------------------

def test_models_list_names_the_alias(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["smollm2"]
    assert client.models.retrieve("smollm2").id == "smollm2"


def test_completion_equals_the_cli_and_counts_usage(client, model):
    out = run_cli("generate", "-m", model, "-p", PROMPT, "-n", "16", "--temp", "0", "-t", "1")
    assert out.startswith(PROMPT)
    want = out[len(PROMPT):].rstrip("\n")
    n_prompt = len(run_cli("tokenize", "-m", model, "--ids", PROMPT).split())
    r = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=16, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert len(r.choices) == 1 and r.choices[0].index == 0
    assert r.choices[0].text == want
    assert r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == n_prompt
    assert r.usage.completion_tokens == 16
    assert r.usage.total_tokens == n_prompt + 16


def test_token_id_prompt_equals_text_prompt(client, model):
    ids = [int(x) for x in run_cli("tokenize", "-m", model, "--ids", PROMPT).split()]
    a = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=8, temperature=0)
    b = client.completions.create(model="smollm2", prompt=ids, max_tokens=8, temperature=0)
    assert a.choices[0].text == b.choices[0].text


def test_chat_equals_the_chat_cli(client, model):
    want = run_cli("chat", "-m", model, "--temp", "0", "-n", "24", "-t", "1", stdin=QUESTION + "\n").rstrip("\n")
    r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                       max_tokens=24, temperature=0)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == want
    assert "Paris" in want
    assert r.usage.completion_tokens <= 24


def test_streaming_chat_equals_non_streaming(client):
    msgs = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Name three colors."}]
    full = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=40, temperature=0)
    chunks = list(client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=40, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == full.usage.model_dump()


def test_streaming_completion_one_chunk_per_piece(client):
    full = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=12, temperature=0)
    chunks = list(client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=12, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert 2 <= len(chunks) <= 13  # at most one chunk per token, plus the finish chunk


def test_stop_sequence_cuts_the_text(client):
    full = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=24, temperature=0).choices[0].text
    stop = full[8:11]
    assert len(stop) == 3 and full.find(stop) >= 0
    want = full[:full.find(stop)]
    r = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop, "zzzz"])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 24
    streamed = list(client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=24, temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == want
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_seeded_sampling_repeats_and_n_gives_choices(client):
    kw = dict(model="smollm2", prompt="Once upon a time", max_tokens=16, temperature=0.9, top_p=0.95, seed=1234)
    a = client.completions.create(**kw)
    b = client.completions.create(**kw)
    assert a.choices[0].text == b.choices[0].text
    many = client.completions.create(n=3, **kw)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert many.choices[0].text == a.choices[0].text  # choice i samples with seed + i
    assert len({c.text for c in many.choices}) > 1
    assert many.usage.completion_tokens == sum(16 for _ in many.choices)
    greedy = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=8, temperature=0, n=2)
    assert greedy.choices[0].text == greedy.choices[1].text


def test_extension_top_k_one_is_greedy(client):
    g = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=10, temperature=0)
    k = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=10, temperature=1.5, seed=5,
                                  extra_body={"top_k": 1})
    assert g.choices[0].text == k.choices[0].text


# ---- bad input ----------------------------------------------------------------------------------

def test_malformed_json_and_wrong_types(server):
    st, body = raw(server, "POST", "/v1/completions", '{"prompt": "x", ')
    assert_api_error(st, body, 400)
    assert "not valid JSON" in body["error"]["message"]
    st, body = raw(server, "POST", "/v1/completions", "[1, 2]")
    assert_api_error(st, body, 400)
    for field, value in [("max_tokens", "ten"), ("temperature", "hot"), ("stream", 1), ("stop", 5), ("n", 1.5), ("seed", "x")]:
        st, body = raw(server, "POST", "/v1/completions", json.dumps({"prompt": "hi", field: value}))
        assert_api_error(st, body, 400, param=field)
    st, body = raw(server, "POST", "/v1/chat/completions", json.dumps({"messages": [{"role": "wizard", "content": "x"}]}))
    assert_api_error(st, body, 400, param="messages[0].role")
    st, body = raw(server, "POST", "/v1/chat/completions", json.dumps({"messages": "hi"}))
    assert_api_error(st, body, 400, param="messages")
    st, body = raw(server, "POST", "/v1/completions", json.dumps({"prompt": "hi", "logprobs": 3}))
    assert_api_error(st, body, 400, param="logprobs")


def test_client_sees_typed_errors(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-4o", prompt="hi", max_tokens=4)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="smollm2", prompt="hi", max_tokens=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="hi", max_tokens=100000)
    assert e.value.body["code"] == "context_length_exceeded" and e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="smollm2", prompt="hi", temperature=3)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="smollm2", prompt="hi", n=99)


def test_prompt_longer_than_the_context(client):
    long_prompt = "the cat sat on the mat and " * 120  # about 840 tokens; the context is 512
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt=long_prompt, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"
    assert "512" in e.value.body["message"]


def test_body_over_the_limit_is_413(server):
    st, body = raw(server, "POST", "/v1/completions", json.dumps({"prompt": "x" * 100_000}))
    assert_api_error(st, body, 413, code="request_too_large")


def test_unknown_endpoint_is_404_json(server):
    st, body = raw(server, "GET", "/v1/nothing")
    assert_api_error(st, body, 404)
    st, body = raw(server, "GET", "/health")
    assert st == 200 and body["status"] == "ok"


# ---- disconnects, limits, auth, shutdown --------------------------------------------------------

def test_disconnect_mid_stream_frees_the_sequence(client, server):
    before = server.metrics()
    stream = client.completions.create(model="smollm2", prompt="Write a long story about a dragon.",
                                       max_tokens=400, temperature=0, stream=True, extra_body={"ignore_eos": True})
    got = 0
    for _ in stream:
        got += 1
        if got == 3:
            break
    stream.close()
    m = server.wait_idle()
    assert m["parallama_client_disconnects_total"] >= before.get("parallama_client_disconnects_total", 0) + 1
    assert m["parallama_kv_blocks_used"] == 0
    # The sequence was cancelled, not run to 400 tokens: far fewer tokens were generated.
    assert m["parallama_generation_tokens_total"] - before["parallama_generation_tokens_total"] < 200


def test_metrics_exposition(server, client):
    client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=4, temperature=0)
    m = server.metrics()
    assert m['parallama_requests_total{endpoint="/v1/completions",code="200"}'] >= 1
    assert m['parallama_requests_total{endpoint="/v1/completions",code="400"}'] >= 1
    assert m["parallama_time_to_first_token_seconds_count"] >= 1
    assert m['parallama_time_to_first_token_seconds_bucket{le="+Inf"}'] == m["parallama_time_to_first_token_seconds_count"]
    assert m["parallama_kv_blocks_total"] > 0 and m["parallama_max_sequences"] == 4


def test_full_queue_is_429_and_api_key_is_checked(model):
    s = Server(model, "-c", "256", "--parallel", "1", "--max-queue", "1", "--api-key", "sekret", "--max-tokens", "200")
    try:
        import openai as oa
        bad = oa.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(oa.AuthenticationError) as e:
            bad.models.list()
        assert e.value.body["code"] == "invalid_api_key"
        st, body = raw(s, "POST", "/v1/completions", json.dumps({"prompt": "hi"}))
        assert_api_error(st, body, 401)
        assert raw(s, "GET", "/health")[0] == 200  # health and metrics need no key
        good = oa.OpenAI(base_url=s.url + "/v1", api_key="sekret", max_retries=0)
        # One request runs, one waits, the third finds the queue full.
        streams = [good.completions.create(model=good.models.list().data[0].id, prompt="Tell a story.", max_tokens=200,
                                           temperature=0, stream=True, extra_body={"ignore_eos": True}) for _ in range(2)]
        first = next(iter(streams[0]))
        assert first.choices[0].text is not None
        deadline = time.time() + 10
        while s.metrics()["parallama_queue_depth"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        with pytest.raises(oa.RateLimitError) as e:
            good.completions.create(model=good.models.list().data[0].id, prompt="hi", max_tokens=4)
        assert e.value.body["code"] == "queue_full"
        for st in streams:
            st.close()
        s.wait_idle()
    finally:
        assert s.stop() == 0


def test_sigterm_drains_running_streams_and_exits(model):
    s = Server(model, "-c", "256", "--parallel", "2", "--drain-timeout", "20")
    import openai as oa
    c = oa.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
    result = {}

    def consume():
        chunks = list(c.completions.create(model=c.models.list().data[0].id, prompt="Once upon a time", max_tokens=48,
                                           temperature=0, stream=True, extra_body={"ignore_eos": True}))
        result["text"] = "".join(ch.choices[0].text for ch in chunks)
        result["finish"] = chunks[-1].choices[0].finish_reason

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.time() + 20
    while s.metrics()["parallama_running_sequences"] < 1 and time.time() < deadline:
        time.sleep(0.01)
    s.proc.send_signal(signal.SIGTERM)
    t.join(timeout=60)
    assert not t.is_alive()
    assert result.get("finish") == "length", result  # the running stream was allowed to finish
    assert s.stop(timeout=30) == 0
    assert any("SIGTERM" in line for line in s.log), "".join(s.log)
