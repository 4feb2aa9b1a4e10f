"""The openai writer for real over HTTP, against an OpenAI-compatible server on 127.0.0.1.

The server (below) speaks Chat Completions plus the files and batches endpoints of the Batch API,
logs every request, and follows a per-(class, kind) fault plan: malformed JSON, wrong counts,
duplicates, HTTP 429/500/401, timeouts. No external network is used.
"""

from __future__ import annotations

import email.policy
import json
import logging
import re
import threading
import time
from collections import defaultdict
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.prompts import PromptsStageError
from tests.helpers import prompt_rows, run_prompts

KEY_ENV = "RP_TEST_OPENAI_KEY"
KEY = "sk-test-9f3c2a71d4e8b6051c7aa2e4"
CLASSES = ["brush hair", "kick ball", "wave"]


# --------------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------------


def _kind_of(body: dict[str, Any]) -> str:
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    if name:
        return name.removesuffix("_answer")
    user = body["messages"][-1]["content"]
    for key, kind in (('"environments"', "environment"), ('"characters"', "character"),
                      ('"descriptions"', "action"), ('"prompt"', "compose")):
        if key in user:
            return kind
    raise AssertionError(f"unrecognised request: {user[:80]}")


def _class_of(body: dict[str, Any]) -> str:
    user = body["messages"][-1]["content"]
    m = re.search(r'(?:Action class|Action|performing the action): "([^"]+)"', user) or \
        re.search(r'performing the action "([^"]+)"', user)
    assert m, user
    return m.group(1)


def _n_of(body: dict[str, Any]) -> int:
    m = re.search(r"exactly (\d+)", body["messages"][-1]["content"])
    return int(m.group(1)) if m else 1


def good_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A valid answer of the requested kind, recognisably the server's."""
    kind, c, n = _kind_of(body), _class_of(body), _n_of(body)
    if kind == "action":
        return {"descriptions": [f"LLM action for {c}: the arms move in a steady repeated rhythm."]}
    if kind == "environment":
        return {"environments": [f"in LLM place {i} for {c}, lit by lamp {i}" for i in range(n)]}
    if kind == "character":
        return {"characters": [f"a LLM person number {i} suited to {c}" for i in range(n)]}
    user = body["messages"][-1]["content"]
    return {"prompt": f"LLM composed prompt for {c}. " + user.split("\n", 1)[0][:200]}


class FakeOpenAI:
    """A threaded HTTP server: /v1/chat/completions, /v1/files, /v1/batches."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.faults: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.always: dict[tuple[str, str], str] = {}
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_ready = True  # False: batches stay in_progress
        self.batch_faults: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()
        self.timeout_delay = 1.5
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                      raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:
                server._record(self, b"")
                m = re.fullmatch(r"/v1/batches/([\w-]+)", self.path)
                if m:
                    return self._send(200, server._poll_batch(m.group(1)))
                m = re.fullmatch(r"/v1/files/([\w-]+)/content", self.path)
                if m:
                    return self._send(200, None, raw=server.files[m.group(1)])
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                entry = server._record(self, body)
                if self.path == "/v1/chat/completions":
                    status, payload, headers, delay, raw = server._chat(json.loads(body), entry["auth"])
                    if delay:
                        time.sleep(delay)
                    return self._send(status, payload, headers, raw)
                if self.path == "/v1/files":
                    return self._send(200, server._upload(self.headers["Content-Type"], body))
                if self.path == "/v1/batches":
                    return self._send(200, server._create_batch(json.loads(body)))
                self._send(404, {"error": {"message": "not found"}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
        entry = {"method": handler.command, "path": handler.path,
                 "auth": handler.headers.get("Authorization", ""), "body": body}
        with self.lock:
            self.log.append(entry)
        return entry

    def chat_requests(self) -> list[dict[str, Any]]:
        return [json.loads(e["body"]) for e in self.log if e["path"] == "/v1/chat/completions"]

    def count(self, path: str, method: str = "POST") -> int:
        return sum(1 for e in self.log if e["path"] == path and e["method"] == method)

    # ------------------------------------------------------------------ chat
    def _completion(self, content: str | None, model: str, refusal: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": content, "refusal": refusal}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}

    def _chat(self, body: dict[str, Any], auth: str) -> tuple[int, Any, dict, float, bytes | None]:
        """(status, payload, headers, delay, raw body) for one chat request."""
        where = (_class_of(body), _kind_of(body))
        with self.lock:
            fault = self.faults[where].pop(0) if self.faults[where] else self.always.get(where)
        model = body["model"]
        answer = good_answer(body)
        if fault is None:
            return 200, self._completion(json.dumps(answer), model), {}, 0.0, None
        if fault == "malformed":
            return 200, self._completion('{"environments": ["in a gym", ', model), {}, 0.0, None
        if fault == "wrong_count":
            key = next(iter(answer))
            short = {key: answer[key][:-1] or ["a", "b"]}
            return 200, self._completion(json.dumps(short), model), {}, 0.0, None
        if fault == "duplicates":
            key = next(iter(answer))
            vals = list(answer[key])
            vals[-1] = vals[0].upper() + "  "  # same text up to case and spacing
            return 200, self._completion(json.dumps({key: vals}), model), {}, 0.0, None
        if fault == "empty_item":
            key = next(iter(answer))
            return 200, self._completion(json.dumps({key: [""] + answer[key][1:]}), model), {}, 0.0, None
        if fault == "fenced":
            return 200, self._completion("```json\n" + json.dumps(answer) + "\n```", model), {}, 0.0, None
        if fault == "refusal":
            return 200, self._completion(None, model, refusal="I cannot help with that."), {}, 0.0, None
        if fault == "not_json_body":
            return 200, None, {}, 0.0, b"<html>gateway hiccup</html>"
        if fault == "429":
            return 429, {"error": {"message": "Rate limit reached", "type": "requests"}}, \
                {"retry-after": "0.01"}, 0.0, None
        if fault == "500":
            return 500, {"error": {"message": "internal error", "type": "server_error"}}, {}, 0.0, None
        if fault == "401":
            # Real servers echo part of a wrong key; this one echoes all of it.
            return 401, {"error": {"message": f"Incorrect API key provided: {auth}", "type": "auth"}}, \
                {}, 0.0, None
        if fault == "timeout":
            return 200, self._completion(json.dumps(answer), model), {}, self.timeout_delay, None
        raise AssertionError(fault)

    # ------------------------------------------------------------------ files and batches
    def _upload(self, content_type: str, body: bytes) -> dict[str, Any]:
        msg = BytesParser(policy=email.policy.default).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        fields = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                  for p in msg.iter_parts()}
        assert fields["purpose"] == b"batch"
        with self.lock:
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = fields["file"]
        return {"id": fid, "object": "file", "bytes": len(fields["file"]), "created_at": 0,
                "filename": "prompts-batch.jsonl", "purpose": "batch", "status": "processed"}

    def _batch_object(self, b: dict[str, Any]) -> dict[str, Any]:
        return {"id": b["id"], "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                "input_file_id": b["input_file_id"], "completion_window": "24h", "status": b["status"],
                "output_file_id": b.get("output_file_id"), "error_file_id": None, "created_at": 0,
                "request_counts": {"total": b["n"], "completed": b.get("done", 0), "failed": 0},
                "metadata": b.get("metadata")}

    def _create_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        assert req["endpoint"] == "/v1/chat/completions" and req["completion_window"] == "24h"
        lines = self.files[req["input_file_id"]].decode().splitlines()
        with self.lock:
            bid = f"batch_{len(self.batches) + 1}"
            self.batches[bid] = {"id": bid, "input_file_id": req["input_file_id"], "status": "validating",
                                 "n": len(lines), "polls": 0, "metadata": req.get("metadata")}
            return self._batch_object(self.batches[bid])

    def _poll_batch(self, bid: str) -> dict[str, Any]:
        with self.lock:
            b = self.batches[bid]
            b["polls"] += 1
            if b["status"] == "completed":
                return self._batch_object(b)
            if not self.batch_ready or b["polls"] < 2:
                b["status"] = "in_progress"
                return self._batch_object(b)
            out = []
            for line in self.files[b["input_file_id"]].decode().splitlines():
                item = json.loads(line)
                body = item["body"]
                answer = good_answer(body)
                fault = self.batch_faults.get((_class_of(body), _kind_of(body)))
                if fault == "wrong_count":
                    key = next(iter(answer))
                    answer = {key: answer[key][:1] + answer[key][:1]}
                resp = {"status_code": 200, "request_id": "req", "body": self._completion(
                    json.dumps(answer), body["model"])}
                out.append(json.dumps({"id": "r", "custom_id": item["custom_id"], "response": resp,
                                       "error": None}))
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = ("\n".join(reversed(out)) + "\n").encode()  # order is not guaranteed
            b.update(status="completed", output_file_id=fid, done=b["n"])
            return self._batch_object(b)


@pytest.fixture
def server():
    srv = FakeOpenAI()
    yield srv
    srv.close()


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def make_cfg(tmp_path: Path, url: str, clips: int = 8, **prompts: Any) -> ExperimentConfig:
    openai = {"base_url": url, "api_key_env": KEY_ENV, "model": "gpt-4o", "timeout_s": 0.5,
              "max_retries": 3, "retry_backoff_s": 0.01, "retry_backoff_max_s": 0.05, "concurrency": 4,
              "batch_poll_s": 0.01, **prompts.pop("openai", {})}
    data = {"seed": 3, "cache_dir": str(tmp_path / "cache"),
            "prompts": {"classes": CLASSES, "writer": "openai", "strategy": "ie", "openai": openai,
                        **prompts},
            "generate": {"clips_per_class": clips}}
    return ExperimentConfig.model_validate(data)


def assert_key_absent(*roots: Path, texts: tuple[str, ...] = ()) -> None:
    """The key is in no file under the roots and in none of the texts."""
    for text in texts:
        assert KEY not in text
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), f"API key leaked into {path}"


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_openai_writer_end_to_end_and_cached_rerun(tmp_path, server, key_env, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # the openai/httpx2 debug logs must not carry the key either
    cfg = make_cfg(tmp_path, server.url)
    store = RunStore(tmp_path / "run")
    logs: list[str] = []
    stats = run_prompts(cfg, store, log=logs.append)

    # 3 classes x (action, environments, characters), each once, with the key, schema attached.
    chats = server.chat_requests()
    assert len(chats) == 9 and stats["requests"] == 9 and stats["cache_hits"] == 0
    assert all(e["auth"] == f"Bearer {KEY}" for e in server.log)
    env_req = next(b for b in chats if _kind_of(b) == "environment")
    schema = env_req["response_format"]["json_schema"]
    assert env_req["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert schema["schema"]["properties"]["environments"]["minItems"] == 4
    assert env_req["model"] == "gpt-4o" and env_req["temperature"] == 1.0
    assert stats["tokens_in"] == 900 and stats["tokens_out"] == 180
    assert stats["est_cost_usd"] == pytest.approx((900 * 2.5 + 180 * 10.0) / 1e6)

    rows = prompt_rows(cfg, store).to_pylist()
    assert len(rows) == 24 == stats["rows"] == stats["rows_new"]
    first = rows[0]
    assert first["class_name"] == "brush hair" and first["environment"].startswith("in LLM place")
    assert first["character"].startswith("a LLM person")
    assert first["action_description"].startswith("LLM action")
    assert first["prompt"].startswith("A LLM person") and "brushing hair" in first["prompt"]

    # A second run of the same config asks nothing.
    n_before = len(server.log)
    stats2 = run_prompts(cfg, store, log=logs.append)
    assert len(server.log) == n_before and stats2["requests"] == 0 and stats2["rows_new"] == 0
    # Even from a fresh run directory the shared cache answers everything, with identical rows.
    store2 = RunStore(tmp_path / "run2")
    stats3 = run_prompts(cfg, store2, log=logs.append)
    assert len(server.log) == n_before and stats3["cache_hits"] == 9 and stats3["est_cost_usd"] == 0
    assert prompt_rows(cfg, store2).to_pylist() == rows

    out = capsys.readouterr()
    assert_key_absent(tmp_path, texts=("\n".join(logs), caplog.text, out.out, out.err, cfg.to_yaml()))


def test_strategy_sweep_and_more_clips_reuse_the_cache(tmp_path, server, key_env):
    store = RunStore(tmp_path / "run")
    run_prompts(make_cfg(tmp_path, server.url, strategy="ie"), store, log=lambda s: None)
    n = len(server.log)
    for strategy in ("basic", "env", "cha"):
        stats = run_prompts(make_cfg(tmp_path, server.url, strategy=strategy), store, log=lambda s: None)
        assert stats["requests"] == 0 and stats["rows_new"] == 24
    stats = run_prompts(make_cfg(tmp_path, server.url, clips=20, strategy="ie"), store, log=lambda s: None)
    assert stats["requests"] == 0 and stats["rows_new"] == 3 * 12
    assert len(server.log) == n


@pytest.mark.parametrize("fault", ["malformed", "wrong_count", "duplicates", "empty_item", "429", "500",
                                   "timeout", "refusal", "not_json_body"])
def test_bad_answers_and_http_errors_are_retried(tmp_path, server, key_env, fault):
    server.faults[("kick ball", "environment")] = [fault, fault]
    logs: list[str] = []
    stats = run_prompts(make_cfg(tmp_path, server.url), RunStore(tmp_path / "run"), log=logs.append)
    env_calls = [b for b in server.chat_requests()
                 if _class_of(b) == "kick ball" and _kind_of(b) == "environment"]
    assert len(env_calls) == 3  # two failures, then the valid answer
    assert stats["requests"] == 11 and stats["failed_classes"] == [] and stats["rows"] == 24
    assert sum("kick ball" in line and "attempt" in line for line in logs) == 2


def test_fenced_json_accepted_without_structured_outputs(tmp_path, server, key_env):
    server.always[("wave", "character")] = "fenced"
    cfg = make_cfg(tmp_path, server.url, openai={"structured_outputs": "none"})
    stats = run_prompts(cfg, RunStore(tmp_path / "run"), log=lambda s: None)
    assert stats["requests"] == 9 and stats["failed_classes"] == []
    assert all("response_format" not in b for b in server.chat_requests())


def test_a_class_that_never_answers_fails_by_name_and_others_go_on(tmp_path, server, key_env):
    server.always[("kick ball", "character")] = "wrong_count"
    cfg = make_cfg(tmp_path, server.url)
    store = RunStore(tmp_path / "run")
    logs: list[str] = []
    with pytest.raises(PromptsStageError, match=r"kick ball.*characters.*4 attempt") as exc:
        run_prompts(cfg, store, log=logs.append)
    assert exc.value.stats["failed_classes"] == ["kick ball"]
    written = store.manifest("prompts", "prompt_id").read().column("class_name").to_pylist()
    assert sorted(set(written)) == ["brush hair", "wave"] and len(written) == 16
    assert any("FAILED" in line and "kick ball" in line for line in logs)

    # Once the server behaves, a rerun asks only for the failed request.
    del server.always[("kick ball", "character")]
    n = len(server.chat_requests())
    stats = run_prompts(cfg, store, log=logs.append)
    new = server.chat_requests()[n:]
    assert [(_class_of(b), _kind_of(b)) for b in new] == [("kick ball", "character")]
    assert stats["rows"] == 24 and stats["rows_new"] == 8 and stats["cache_hits"] == 2


def test_auth_error_is_not_retried_and_the_key_is_scrubbed(tmp_path, server, key_env, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    for c in CLASSES:
        for k in ("action", "environment", "character"):
            server.always[(c, k)] = "401"
    logs: list[str] = []
    with pytest.raises(PromptsStageError) as exc:
        run_prompts(make_cfg(tmp_path, server.url), RunStore(tmp_path / "run"), log=logs.append)
    assert len(server.chat_requests()) == 9  # one attempt each: 401 is not retryable
    assert "HTTP 401" in str(exc.value) and "[REDACTED]" in str(exc.value)
    out = capsys.readouterr()
    assert_key_absent(tmp_path, texts=(str(exc.value), "\n".join(logs), caplog.text, out.out, out.err))


def test_missing_key_is_a_clear_error_and_sends_nothing(tmp_path, server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    cfg = make_cfg(tmp_path, server.url)
    cfg.prompts.openai.base_url = None  # the real API: a key is required
    from ray_pipeline.prompts.writers import WriterError

    with pytest.raises(WriterError, match=KEY_ENV):
        run_prompts(cfg, RunStore(tmp_path / "run"), log=lambda s: None)
    assert server.log == []


def test_llm_composer_one_request_per_combination(tmp_path, server, key_env):
    cfg = make_cfg(tmp_path, server.url, clips=20, composer="llm", n_characters=3, n_environments=2)
    store = RunStore(tmp_path / "run")
    stats = run_prompts(cfg, store, log=lambda s: None)
    composes = [b for b in server.chat_requests() if _kind_of(b) == "compose"]
    assert len(composes) == 3 * 6 and stats["requests"] == 9 + 18  # 2 x 3 combinations per class
    one = next(b for b in composes if _class_of(b) == "wave")
    user = one["messages"][-1]["content"]
    assert "LLM person" in user and "in LLM place" in user and "LLM action for wave" in user
    rows = prompt_rows(cfg, store).to_pylist()
    assert all(r["prompt"].startswith("LLM composed prompt for") for r in rows)
    assert all(r["composer"] == "llm" for r in rows)
    # Same (environment, character) -> same prompt; the two clips differ by seed only.
    by_combo: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for r in rows:
        by_combo[(r["class_name"], r["environment_index"], r["character_index"])].add(r["prompt"])
    assert len(by_combo) == 18 and all(len(v) == 1 for v in by_combo.values())
    n = len(server.log)
    run_prompts(make_cfg(tmp_path, server.url, clips=20, composer="llm", n_characters=3, n_environments=2),
                RunStore(tmp_path / "other"), log=lambda s: None)
    assert len(server.log) == n


def test_batch_api_submit_poll_collect(tmp_path, server, key_env):
    server.batch_faults[("wave", "environment")] = "wrong_count"  # must be asked again, synchronously
    cfg = make_cfg(tmp_path, server.url, openai={"batch_api": True}, response_cache="run")
    store = RunStore(tmp_path / "run")
    logs: list[str] = []
    stats = run_prompts(cfg, store, log=logs.append)
    assert server.count("/v1/files") == 1 and server.count("/v1/batches") == 1
    uploaded = next(iter(server.files.values())).decode().splitlines()
    assert len(uploaded) == 9
    line = json.loads(uploaded[0])
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["response_format"]["type"] == "json_schema"
    chats = server.chat_requests()
    assert [(_class_of(b), _kind_of(b)) for b in chats] == [("wave", "environment")]
    assert stats["rows"] == 24 and stats["batches_submitted"] == 1 and stats["requests"] == 10
    # 9 batch answers (the invalid one is billed too) at half price, one synchronous at full price.
    assert stats["est_cost_usd"] == pytest.approx(
        (9 * (100 * 2.5 + 20 * 10.0) * 0.5 + (100 * 2.5 + 20 * 10.0)) / 1e6)
    record = json.loads(store.read_text(store.list_files("prompts/batches", ".json")[0]))
    assert record["batch_id"] == "batch_1" and record["status"] == "collected"
    assert any("invalid batch answer" in line for line in logs)
    # Everything is cached now: a rerun submits nothing.
    n = len(server.log)
    run_prompts(cfg, RunStore(tmp_path / "run"), log=logs.append)
    assert len(server.log) == n


def test_batch_api_resumes_a_submitted_batch(tmp_path, server, key_env):
    from ray_pipeline.prompts.writers import WriterError

    server.batch_ready = False
    cfg = make_cfg(tmp_path, server.url, openai={"batch_api": True, "batch_max_wait_s": 0.2})
    store = RunStore(tmp_path / "run")
    with pytest.raises(WriterError, match="batch_1 still in_progress.*resume"):
        run_prompts(cfg, store, log=lambda s: None)
    assert server.count("/v1/batches") == 1
    saved = json.loads(store.read_text("prompts/batches/batch_1.json"))
    assert saved["status"] == "in_progress" and len(saved["custom_ids"]) == 9

    server.batch_ready = True
    logs: list[str] = []
    stats = run_prompts(cfg, store, log=logs.append)
    assert server.count("/v1/batches") == 1 and server.count("/v1/files") == 1  # nothing resubmitted
    assert server.chat_requests() == []
    assert stats["batches_resumed"] == 1 and stats["batches_submitted"] == 0 and stats["rows"] == 24
    assert any("resuming batch batch_1" in line for line in logs)


def test_batch_api_splits_large_jobs_and_collects_finished_uncollected_batches(tmp_path, server, key_env,
                                                                                monkeypatch):
    from ray_pipeline.prompts.writers import openai_writer

    monkeypatch.setattr(openai_writer, "BATCH_MAX_REQUESTS", 4)
    cfg = make_cfg(tmp_path, server.url, openai={"batch_api": True})
    store = RunStore(tmp_path / "run")
    # Simulate a stage killed right after its first batch finished, before reading its answers.
    def killed(self, batch, pending):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(openai_writer.OpenAIWriter, "_collect", killed)
    with pytest.raises(KeyboardInterrupt):
        run_prompts(cfg, store, log=lambda s: None)
    assert server.count("/v1/batches") == 3  # 9 requests, at most 4 per batch
    records = [json.loads(store.read_text(p)) for p in store.list_files("prompts/batches", ".json")]
    assert sorted(len(r["custom_ids"]) for r in records) == [1, 4, 4]
    assert sorted(r["status"] for r in records) == ["completed", "validating", "validating"]

    monkeypatch.undo()
    monkeypatch.setenv(KEY_ENV, KEY)
    stats = run_prompts(cfg, store, log=lambda s: None)
    assert server.count("/v1/batches") == 3 and server.chat_requests() == []
    assert stats["batches_resumed"] == 3 and stats["rows"] == 24


def test_missing_key_is_reported_like_a_config_error(tmp_path, server, monkeypatch):
    from ray_pipeline.config import ConfigError

    monkeypatch.delenv(KEY_ENV, raising=False)
    cfg = make_cfg(tmp_path, server.url)
    cfg.prompts.openai.base_url = None
    with pytest.raises(ConfigError, match=r"\$RP_TEST_OPENAI_KEY \(prompts.openai.api_key_env\)"):
        run_prompts(cfg, RunStore(tmp_path / "run"), log=lambda s: None)
