"""The ``openai`` writer: GPT-4o (the paper's choice) or any OpenAI-compatible server (vLLM, ...).

Requests go through the official ``openai`` client (Chat Completions, the API local servers
implement best) with a strict JSON schema per answer. Every answer is validated (exactly N distinct
non-empty strings); a malformed answer, HTTP 408/409/429/5xx, a timeout or a dropped connection is
retried with exponential backoff, and after the retries the job fails with a message naming its
class while the other jobs go on. Validated answers go into the response cache, so no request is
ever sent twice.

Batch mode (``prompts.openai.batch_api``) uploads the uncached requests as one JSONL file, starts a
batch, polls it and matches its answers by ``custom_id`` (the cache key). The batch id is stored in
the run directory at once, so a stage interrupted while waiting resumes the same batch instead of
paying for a second one. Answers a batch did not deliver validly are asked again synchronously.

The API key is read from the environment variable named in the config, only when a request is
actually needed, and is scrubbed from every message this module produces.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray_pipeline.config import ConfigError, OpenAIWriterConfig
from ray_pipeline.prompts.cache import ResponseCache, request_key
from ray_pipeline.prompts.messages import (
    PROMPTS_VERSION,
    AnswerError,
    Job,
    messages,
    parse_answer,
    response_format,
)
from ray_pipeline.prompts.writers.base import JobResult, PromptWriter, WriterError, WriterStats, register_writer
from ray_pipeline.runstore import RunStore

BATCH_DIR = "prompts/batches"
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 190 * 2**20
_TERMINAL = {"completed", "failed", "expired", "cancelled"}
_RETRY_STATUS = {408, 409, 429}


class MissingKeyError(WriterError, ConfigError):
    """No API key in the environment (a config problem: the CLI reports it like one)."""


class _Fatal(Exception):
    """A request error that retrying cannot fix (400, 401, 403, 404, ...)."""


class _Retryable(Exception):
    """A request error worth retrying (429, 5xx, timeouts, dropped connections, bad bodies)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@register_writer("openai")
class OpenAIWriter(PromptWriter):
    """LLM-backed writer; see the module docstring."""

    name = "openai"

    def __init__(self, cfg: OpenAIWriterConfig, cache: ResponseCache, store: RunStore,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.cache, self.store, self._log = cfg, cache, store, log
        self.stats = WriterStats()
        self._client: Any = None
        self._secret: str | None = None

    # ---------------------------------------------------------------- identity, client, logging
    @classmethod
    def identity_of(cls, cfg: OpenAIWriterConfig) -> dict[str, Any]:
        return {"writer": "openai", "model": cfg.model, "temperature": cfg.temperature,
                "messages": PROMPTS_VERSION, "format": cfg.structured_outputs}

    def identity(self) -> dict[str, Any]:
        return self.identity_of(self.cfg)

    def _redact(self, text: str) -> str:
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "[REDACTED]")
        return text

    def log(self, text: str) -> None:
        self._log(self._redact(text))

    def client(self) -> Any:
        """The ``openai.OpenAI`` client, made on first use (a fully cached run needs no key)."""
        if self._client is None:
            from openai import OpenAI

            key = os.environ.get(self.cfg.api_key_env, "").strip()
            if not key:
                if not self.cfg.base_url:
                    raise MissingKeyError(
                        f"the openai writer needs an API key in the environment variable "
                        f"${self.cfg.api_key_env} (prompts.openai.api_key_env); or point "
                        "prompts.openai.base_url at a server that needs none"
                    )
                # OpenAI-compatible servers started without --api-key accept any token.
                key = "EMPTY"
            else:
                self._secret = key
            # Retries are ours (they also cover invalid answers), so the client's are off.
            self._client = OpenAI(api_key=key, base_url=self.cfg.base_url, timeout=self.cfg.timeout_s,
                                  max_retries=0)
        return self._client

    def server_url(self) -> str:
        """The server requests go to (``prompts.openai.base_url``, else OpenAI's)."""
        return self.cfg.base_url or "https://api.openai.com/v1"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---------------------------------------------------------------- requests
    def request_body(self, job: Job) -> dict[str, Any]:
        """The Chat Completions body of a job; also what its cache key is computed from."""
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages(job),
                                "temperature": self.cfg.temperature}
        fmt = response_format(job, self.cfg.structured_outputs)
        if fmt is not None:
            body["response_format"] = fmt
        if self.cfg.max_completion_tokens is not None:
            body["max_completion_tokens"] = self.cfg.max_completion_tokens
        return body

    def _add_usage(self, usage: Any, discount: float = 1.0) -> None:
        if usage is None:
            return
        get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
        t_in, t_out = int(get("prompt_tokens", 0) or 0), int(get("completion_tokens", 0) or 0)
        cost = (t_in * self.cfg.price_input_per_m + t_out * self.cfg.price_output_per_m) / 1e6 * discount
        self.stats.add(tokens_in=t_in, tokens_out=t_out, est_cost_usd=cost)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.cfg.retry_backoff_max_s, self.cfg.retry_backoff_s * 2 ** (attempt - 1))
        delay *= random.uniform(0.75, 1.25)  # jitter: concurrent retries should not stampede
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cfg.retry_backoff_max_s))
        return delay

    def _call(self, body: dict[str, Any]) -> tuple[str | None, Any]:
        """One HTTP request; returns (content, usage) or raises a retryable or fatal error."""
        import openai

        try:
            resp = self.client().chat.completions.create(**body)
        except openai.APITimeoutError:
            raise _Retryable(f"no answer within {self.cfg.timeout_s:g} s") from None
        except openai.APIConnectionError as exc:
            # The client's own message ("Connection error.") does not say where it tried.
            raise _Retryable(f"cannot connect to {self.server_url()}: {exc}") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            detail = f"HTTP {status}: {getattr(exc, 'message', exc)}"
            if status in _RETRY_STATUS or status >= 500:
                headers = exc.response.headers if exc.response is not None else {}
                raise _Retryable(detail, _seconds(headers.get("retry-after"))) from None
            raise _Fatal(detail) from None
        except (openai.APIError, ValueError) as exc:  # e.g. a 200 whose body is not JSON
            raise _Retryable(f"unusable response: {type(exc).__name__}: {exc}") from None
        if not resp.choices:
            raise AnswerError("answer has no choices")
        choice = resp.choices[0]
        self._add_usage(resp.usage)
        msg = choice.message
        if getattr(msg, "refusal", None):
            raise AnswerError(f"the model refused: {msg.refusal}")
        if choice.finish_reason == "length":
            raise AnswerError("answer cut off by the token limit (finish_reason=length)")
        return msg.content, resp.usage

    def _ask(self, job: Job, body: dict[str, Any], key: str) -> JobResult:
        """Send one request with retries until a valid answer; never raises."""
        attempts = self.cfg.max_retries + 1
        last = "no attempt made"
        retry_after: float | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self._backoff(attempt, retry_after))
                retry_after = None
            self.stats.add(requests=1)
            try:
                content, usage = self._call(body)
                values = parse_answer(job, content)
            except WriterError:
                raise  # no key: nothing to retry, the stage stops
            except _Fatal as exc:
                last = str(exc)
                break
            except (AnswerError, _Retryable) as exc:
                last = str(exc)
                retry_after = getattr(exc, "retry_after", None)
                self.log(f"prompts: {job.describe()}: attempt {attempt + 1}/{attempts} failed: {last}")
                continue
            self.cache.put(key, body, content or "", _usage_dict(usage), source="sync")
            return JobResult(job, values)
        self.stats.add(failed_requests=1)
        return JobResult(job, None, self._redact(f"{job.describe()}: no valid answer after "
                                                 f"{attempt + 1} attempt(s); last error: {last}"))

    # ---------------------------------------------------------------- the interface
    def answer(self, jobs: list[Job]) -> list[JobResult]:
        bodies = [self.request_body(j) for j in jobs]
        keys = [request_key(b) for b in bodies]
        done: dict[str, JobResult] = {}
        pending: dict[str, tuple[Job, dict[str, Any]]] = {}
        for job, body, key in zip(jobs, bodies, keys):
            if key in done or key in pending:
                continue
            entry = self.cache.get(key)
            if entry is not None:
                try:
                    done[key] = JobResult(job, parse_answer(job, entry.get("content")))
                    self.stats.add(cache_hits=1)
                    continue
                except AnswerError:
                    pass  # an entry that no longer validates is asked for again
            pending[key] = (job, body)
        if pending and self.cfg.batch_api:
            done.update(self._run_batch(pending))
            pending = {k: v for k, v in pending.items() if k not in done}
            if pending:
                self.log(f"prompts: {len(pending)} request(s) without a valid batch answer; "
                         "asking them synchronously")
        if pending:
            self.client()  # fail fast on a missing key, before the thread pool
            with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
                futures = {k: pool.submit(self._ask, job, body, k) for k, (job, body) in pending.items()}
                for k, fut in futures.items():
                    done[k] = fut.result()
        # Duplicate jobs share one answer but report their own job.
        return [JobResult(j, done[k].values, done[k].error) for j, k in zip(jobs, keys)]

    # ---------------------------------------------------------------- batch mode
    def _records(self) -> list[dict[str, Any]]:
        out = []
        for path in self.store.list_files(BATCH_DIR, ".json"):
            try:
                out.append(json.loads(self.store.read_text(path)))
            except (OSError, json.JSONDecodeError):
                continue
        return out

    def _save_record(self, record: dict[str, Any]) -> None:
        self.store.write_text(f"{BATCH_DIR}/{record['batch_id']}.json", json.dumps(record, indent=1))

    def _submit(self, keys: list[str], lines: dict[str, str]) -> dict[str, Any]:
        data = ("\n".join(lines[k] for k in keys) + "\n").encode("utf-8")
        client = self.client()
        upload = client.files.create(file=("prompts-batch.jsonl", io.BytesIO(data), "application/jsonl"),
                                     purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window="24h",
                                      metadata={"created_by": "ray_pipeline prompts"})
        record = {"batch_id": batch.id, "input_file_id": upload.id, "model": self.cfg.model,
                  "custom_ids": sorted(keys), "status": batch.status,
                  "submitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        # Stored before any waiting, so an interrupted stage finds and resumes this batch.
        self._save_record(record)
        self.stats.add(requests=len(keys), batches_submitted=1)
        self.log(f"prompts: submitted batch {batch.id} with {len(keys)} request(s)")
        return record

    def _run_batch(self, pending: dict[str, tuple[Job, dict[str, Any]]]) -> dict[str, JobResult]:
        # Batches of an earlier, interrupted run that hold any of these requests are resumed
        # (also when they finished but were never collected); only the rest is submitted.
        active = [r for r in self._records() if r.get("status") not in {"collected", "failed"}
                  and set(r.get("custom_ids", [])) & set(pending)]
        for r in active:
            self.stats.add(batches_resumed=1)
            self.log(f"prompts: resuming batch {r['batch_id']} (status {r.get('status')})")
        covered = {k for r in active for k in r["custom_ids"]}
        lines = {k: json.dumps({"custom_id": k, "method": "POST", "url": "/v1/chat/completions", "body": b})
                 for k, (_, b) in pending.items() if k not in covered}
        chunk: list[str] = []
        size = 0
        for k in sorted(lines):  # the Batch API takes <= 50,000 requests and <= 200 MB per file
            n = len(lines[k].encode("utf-8")) + 1
            if chunk and (len(chunk) >= BATCH_MAX_REQUESTS or size + n > BATCH_MAX_BYTES):
                active.append(self._submit(chunk, lines))
                chunk, size = [], 0
            chunk.append(k)
            size += n
        if chunk:
            active.append(self._submit(chunk, lines))
        results: dict[str, JobResult] = {}
        for record in active:
            batch = self._wait(record)
            results.update(self._collect(batch, pending))
            record["status"] = "collected" if batch.status != "failed" else "failed"
            self._save_record(record)
            if batch.status == "failed":
                errors = getattr(batch, "errors", None)
                detail = "; ".join(f"{e.code}: {e.message}" for e in (errors.data or [])) if errors else ""
                raise WriterError(self._redact(f"batch {batch.id} failed{': ' + detail if detail else ''}; "
                                               "rerun the stage to submit a new one"))
        return results

    def _wait(self, record: dict[str, Any]) -> Any:
        client, start, last_counts = self.client(), time.monotonic(), None
        while True:
            batch = client.batches.retrieve(record["batch_id"])
            if batch.status != record.get("status"):
                record["status"] = batch.status
                self._save_record(record)
            counts = getattr(batch, "request_counts", None)
            summary = (counts.completed, counts.failed, counts.total) if counts else None
            if summary != last_counts and summary is not None:
                self.log(f"prompts: batch {batch.id} {batch.status}: {summary[0]}/{summary[2]} done, "
                         f"{summary[1]} failed")
                last_counts = summary
            if batch.status in _TERMINAL:
                return batch
            waited = time.monotonic() - start
            if waited >= self.cfg.batch_max_wait_s:
                raise WriterError(f"batch {batch.id} still {batch.status} after {waited:.0f} s "
                                  "(prompts.openai.batch_max_wait_s); rerun the stage to resume it")
            time.sleep(min(self.cfg.batch_poll_s, max(0.0, self.cfg.batch_max_wait_s - waited)))

    def _collect(self, batch: Any, pending: dict[str, tuple[Job, dict[str, Any]]]) -> dict[str, JobResult]:
        results: dict[str, JobResult] = {}
        client = self.client()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            text = client.files.content(file_id).text
            for line in text.splitlines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue
                key = item.get("custom_id")
                if key not in pending or key in results:
                    continue
                job, body = pending[key]
                response = item.get("response") or {}
                if response.get("status_code") != 200:
                    err = item.get("error") or (response.get("body") or {}).get("error")
                    self.log(f"prompts: {job.describe()}: batch error: {err}")
                    continue
                answer = response.get("body") or {}
                self._add_usage(answer.get("usage"), discount=self.cfg.batch_discount)
                try:
                    choice = (answer.get("choices") or [{}])[0]
                    content = (choice.get("message") or {}).get("content")
                    values = parse_answer(job, content)
                except AnswerError as exc:
                    self.log(f"prompts: {job.describe()}: invalid batch answer ({exc})")
                    continue
                self.cache.put(key, body, content, _usage_dict(answer.get("usage")), source="batch")
                results[key] = JobResult(job, values)
        return results


def _usage_dict(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    if isinstance(usage, dict):
        return {k: int(v) for k, v in usage.items() if isinstance(v, int)}
    return {k: int(getattr(usage, k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if hasattr(usage, k)}
