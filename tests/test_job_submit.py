"""The local-cluster walkthrough of docs/cluster.md, run for real.

The test reads the fenced block marked ``tested-by: tests/test_job_submit.py`` in docs/cluster.md
and runs its commands in order: token auth on, ``ray start --head`` from this virtualenv,
``cluster/submit.sh`` (``ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml
--no-wait -- ray-pipeline run experiments/quickstart.yaml ...``), ``ray job logs --follow``,
``ray job status``, and finally stops the head. It then checks that the job SUCCEEDED and that
its results are in the run directory.

What the test changes, and why (everything else runs as documented):

* ports: free ones instead of 6379/8265, plus explicit ports for every other head service and
  worker, so the test never collides with another Ray on the machine;
* the head runs with ``--block`` under this test's control and a short private ``--temp-dir``;
* the token lives in a temporary file (``RAY_AUTH_TOKEN_PATH``), so ``~/.ray/auth_token`` is
  neither read nor written;
* ``--run-dir`` is a temporary absolute path and ``TINY_OVERRIDES`` shrink the experiment;
* ``ray stop`` becomes SIGTERM to this test's own ``ray start --block`` process: ``ray stop``
  kills every Ray process of the machine by name, including other users' clusters.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cluster_docs import REPO, entrypoint, option, walkthrough_commands

pytestmark = pytest.mark.integration

# Make the quickstart about a minute of work on two cores; each key is checked by the config
# loader, so a renamed field fails the job (and this test) instead of being ignored. The world's
# CLIP (score model and training backbone) is swapped for conftest's tiny random CLIP: building
# the world's one from scratch takes ~15 minutes when the package does not ship it.
TINY_OVERRIDES = ["generate.clips_per_class=2", "train.epochs=1", "train.warmup_epochs=0",
                  "evaluate.num_clips=1", "evaluate.baseline=false"]
CLIP_FIELDS = ["score.model", "train.backbone"]

DOC_GCS_PORT = "6379"
DOC_DASHBOARD_PORT = "8265"
HEAD_START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 120


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free right now."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("", 0))  # all interfaces: Ray binds some services to the node's address
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def free_port_range(width: int) -> tuple[int, int]:
    """A run of ``width`` consecutive ports, all free right now (for Ray's worker ports)."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        lo = rng.randrange(20000, 60000 - width)
        ok = True
        for port in range(lo, lo + width):
            with socket.socket() as s:
                try:
                    s.bind(("", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return lo, lo + width - 1
    raise RuntimeError("no free port range for Ray workers")


def processes_with_env(marker: str) -> list[int]:
    """Pids of this user's processes whose environment contains ``marker`` (our token path)."""
    needle = marker.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # gone, or another user's
            continue
    return pids


class LocalHead:
    """Runs the documented commands against a private Ray head, and tears it all down."""

    def __init__(self, run_dir: Path, work: Path, overrides: list[str]) -> None:
        self.run_dir = run_dir
        self.overrides = overrides
        self.work = work
        # Short: Ray's unix socket paths (<temp>/session_<date>_<pid>/sockets/...) must stay
        # under the 107-byte limit, which pytest's tmp_path would exceed.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))
        self.token_path = work / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self._pick_ports()
        self.head: subprocess.Popen | None = None
        self.head_log = work / "ray-start.log"
        self.transcript: list[str] = []
        self.outputs: dict[str, str] = {}
        self.steps: list[str] = []
        self.env = self._base_env()

    def _pick_ports(self) -> None:
        (self.gcs_port, self.dashboard_port, self.client_port, self.agent_port, self.agent_grpc_port,
         self.runtime_env_port, self.metrics_port, self.node_manager_port,
         self.object_manager_port) = free_ports(9)
        self.worker_ports = free_port_range(64)

    # ------------------------------------------------------------------ environment
    def _base_env(self) -> dict[str, str]:
        # No inherited RAY_* (an outer RAY_ADDRESS or token would point elsewhere).
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def localize(self, arg: str) -> str:
        return arg.replace(f"127.0.0.1:{DOC_DASHBOARD_PORT}", f"127.0.0.1:{self.dashboard_port}")

    # ------------------------------------------------------------------ running the doc
    def run_documented(self, argv: list[str]) -> None:
        argv = [self.localize(a) for a in argv]
        head = argv[0]
        if argv[:2] == ["source", ".venv/bin/activate"]:
            # What `activate` does that matters here: this venv's bin/ first on PATH. The head
            # inherits that PATH, so the job's `ray-pipeline` and `python` are this venv's.
            bin_dir = str(Path(sys.executable).parent)
            self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
            self.env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
            self.steps.append("activate")
        elif head == "export":
            for assignment in argv[1:]:
                key, _, value = assignment.partition("=")
                self.env[key] = value
            self.steps.append("export " + " ".join(a.partition("=")[0] for a in argv[1:]))
        elif argv[:2] == ["ray", "get-auth-token"]:
            redirect = argv.index(">") if ">" in argv else None
            cmd = argv[:redirect] if redirect is not None else argv
            out = self._run(cmd).stdout
            # The token printed is the one in RAY_AUTH_TOKEN_PATH: nothing new was generated.
            assert out.strip() == self.token_path.read_text(), "get-auth-token returned another token"
            self.steps.append("token")
        elif argv[:3] == ["ray", "start", "--head"]:
            self._start_head(argv)
            self.steps.append("start")
        elif head == "cluster/submit.sh":
            self._run(self._tiny(argv))
            self.steps.append("submit")
        elif argv[:3] == ["ray", "job", "logs"]:
            proc = self._run(argv, timeout=JOB_TIMEOUT_S)
            self.outputs["logs"] = proc.stdout + proc.stderr
            self.steps.append("logs")
        elif argv[:3] == ["ray", "job", "status"]:
            proc = self._run(argv)
            self.outputs["status"] = proc.stdout + proc.stderr
            self.steps.append("status")
        elif argv == ["ray", "stop"]:
            self.stop()
            self.steps.append("stop")
        else:
            raise AssertionError(f"docs/cluster.md: the tested block has a command this test does not "
                                 f"know how to run: {shlex.join(argv)}")

    def _tiny(self, argv: list[str]) -> list[str]:
        """The submit command with the test's run directory and the tiny overrides."""
        ep_start = argv.index("--") + 1
        ep = list(argv[ep_start:])
        assert "--run-dir" in ep, f"documented submit has no --run-dir: {shlex.join(argv)}"
        ep[ep.index("--run-dir") + 1] = str(self.run_dir)
        for override in self.overrides:
            ep += ["--set", override]
        return argv[:ep_start] + ep

    def _start_head(self, argv: list[str], attempts: int = 2) -> None:
        """Start the head; a port taken between picking and binding gets one retry on new ports."""
        for attempt in range(attempts):
            if self._try_start_head(argv):
                return
            self.stop(grace_s=30)
            if attempt + 1 < attempts:
                self.transcript.append("ray start failed, retrying:\n" + self._tail(self.head_log))
                self._pick_ports()
        raise AssertionError(f"ray start exited with {self.head.returncode}:\n{self._tail(self.head_log)}")

    def _try_start_head(self, argv: list[str]) -> bool:
        args = []
        for a in argv:
            if a == f"--port={DOC_GCS_PORT}":
                a = f"--port={self.gcs_port}"
            elif a == f"--dashboard-port={DOC_DASHBOARD_PORT}":
                a = f"--dashboard-port={self.dashboard_port}"
            args.append(a)
        assert f"--port={self.gcs_port}" in args and f"--dashboard-port={self.dashboard_port}" in args, (
            f"documented `ray start` must pass --port={DOC_GCS_PORT} --dashboard-port={DOC_DASHBOARD_PORT}")
        args += [
            "--block",
            f"--temp-dir={self.temp_dir}",
            "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={self.client_port}",
            f"--dashboard-agent-listen-port={self.agent_port}",
            f"--dashboard-agent-grpc-port={self.agent_grpc_port}",
            f"--runtime-env-agent-port={self.runtime_env_port}",
            f"--metrics-export-port={self.metrics_port}",
            f"--node-manager-port={self.node_manager_port}",
            f"--object-manager-port={self.object_manager_port}",
            f"--min-worker-port={self.worker_ports[0]}",
            f"--max-worker-port={self.worker_ports[1]}",
        ]
        self.transcript.append("$ " + shlex.join(args) + "  &")
        log = open(self.head_log, "wb")
        # Own session: the test can signal exactly this process tree and nothing else.
        self.head = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.head.poll() is not None:
                return False
            if self._api("/api/version") is not None and self._api("/api/jobs/") is not None:
                return True
            time.sleep(1)
        raise AssertionError(f"the head did not answer within {HEAD_START_TIMEOUT_S}s:\n"
                             f"{self._tail(self.head_log)}")

    def _api(self, path: str, token: bool = True) -> object | None:
        """GET the dashboard's JSON API; None if it does not answer 200."""
        req = urllib.request.Request(self.address + path)
        if token:
            req.add_header("Authorization", f"Bearer {self.token_path.read_text()}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read() or b"null")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def api_status_code(self, path: str) -> int:
        """HTTP status of an unauthenticated GET (to prove auth is enforced)."""
        try:
            with urllib.request.urlopen(self.address + path, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def job_info(self, submission_id: str) -> dict:
        info = self._api(f"/api/jobs/{submission_id}")
        assert isinstance(info, dict), f"no job {submission_id} on the head"
        return info

    def _run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        self.transcript.append("$ " + shlex.join(argv))
        try:
            proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            raise AssertionError(f"{shlex.join(argv)} did not finish in {timeout}s; output so far:\n"
                                 f"{out[-4000:]}") from None
        self.transcript.append(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc

    # ------------------------------------------------------------------ teardown
    def stop(self, grace_s: float = 60) -> list[int]:
        """Stop this test's head and everything it started; returns pids that had to be killed."""
        if self.head is not None and self.head.poll() is None:
            # `ray start --block` drains the node and terminates its processes on SIGTERM.
            self.head.send_signal(signal.SIGTERM)
            try:
                self.head.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.head.pid, signal.SIGKILL)
                self.head.wait(timeout=10)
        # Workers, the job driver and its watcher start their own sessions; they carry our token
        # path in their environment, which identifies them exactly.
        deadline = time.monotonic() + 15
        leftovers = processes_with_env(str(self.token_path))
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.5)
            leftovers = processes_with_env(str(self.token_path))
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return leftovers

    def cleanup(self) -> None:
        self.stop(grace_s=30)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    @staticmethod
    def _tail(path: Path, n: int = 6000) -> str:
        try:
            return path.read_text(errors="replace")[-n:]
        except OSError:
            return "<no log>"

    def report(self) -> str:
        return "\n".join(self.transcript)[-12000:] + "\n--- ray start log ---\n" + self._tail(self.head_log)


def read_manifest(folder: Path) -> pa.Table:
    parts = sorted(folder.glob("*.parquet"))
    assert parts, f"no manifest parts in {folder}"
    return pa.concat_tables([pq.read_table(io.BytesIO(p.read_bytes())) for p in parts],
                            promote_options="permissive")


def test_documented_local_submission(tmp_path, tiny_clip):
    commands = walkthrough_commands()
    submit = [c for c in commands if c[0] == "cluster/submit.sh"]
    assert len(submit) == 1, "the tested block must submit exactly one job"
    submission_id = option(submit[0][: submit[0].index("--")], "--submission-id")
    assert submission_id, "the documented submit must name its --submission-id"
    assert entrypoint(submit[0])[:2] == ["ray-pipeline", "run"]

    user_token = Path.home() / ".ray" / "auth_token"
    user_token_before = user_token.read_bytes() if user_token.exists() else None

    run_dir = tmp_path / "run"
    overrides = TINY_OVERRIDES + [f"{field}={tiny_clip}" for field in CLIP_FIELDS]
    head = LocalHead(run_dir, tmp_path, overrides)
    started = time.monotonic()
    try:
        for argv in commands:
            if argv == ["ray", "stop"]:
                # Before stopping: the head enforces auth, and the job's record says SUCCEEDED.
                assert head.api_status_code("/api/jobs/") == 401, "the head answered without the token"
                info = head.job_info(submission_id)
            head.run_documented(argv)
        leftovers = head.stop()
    except BaseException:
        print(head.report())
        raise
    finally:
        head.cleanup()
    elapsed = time.monotonic() - started

    assert head.steps[-1] == "stop", f"the tested block must end with `ray stop`; ran {head.steps}"
    for step in ("activate", "export RAY_AUTH_MODE", "token", "start", "submit", "logs", "status"):
        assert step in head.steps, f"the tested block is missing the {step!r} step; ran {head.steps}"
    assert head.steps.index("export RAY_AUTH_MODE") < head.steps.index("start"), "auth before ray start"

    assert info["status"] == "SUCCEEDED", (
        f"job ended {info['status']}: {info.get('message')}\n{head.outputs.get('logs', '')[-6000:]}")
    assert f"Job '{submission_id}' succeeded" in head.outputs["status"]
    assert info["runtime_env"]["working_dir"].startswith("gcs://"), "the working directory was not uploaded"
    assert head.head.returncode is not None, "the head is still running"
    assert not leftovers, f"processes outlived the head and had to be killed: {leftovers}"
    if user_token_before is not None:  # (another process may create it meanwhile: Ray's ray.init() does)
        assert user_token.read_bytes() == user_token_before, "the test changed ~/.ray/auth_token"

    # The results are where the command said, not in the job's temporary working directory.
    assert (run_dir / "config.yaml").is_file()
    prompts = read_manifest(run_dir / "prompts" / "manifest")
    generated = read_manifest(run_dir / "generate" / "manifest")
    scored = read_manifest(run_dir / "score" / "manifest")
    assert generated.num_rows == prompts.num_rows > 0
    assert scored.num_rows == generated.num_rows
    assert len(set(generated.column("clip_id").to_pylist())) == generated.num_rows
    for uri in generated.column("video_uri").to_pylist():
        path = Path(uri)
        assert path.is_relative_to(run_dir) and path.is_file() and path.stat().st_size > 0, uri
    # The rest of the quickstart: a trained model and the zero-shot summary.
    assert (run_dir / "train" / "result.json").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    # The backbone row is off (tiny overrides); the recipe's source-trained model is the baseline row.
    assert [r["role"] for r in summary["rows"]] == ["baseline", "generated"], summary["rows"]
    # MLflow: runs in the run directory's sqlite, and their artifacts (each stage's config.yaml)
    # there too. MLflow's default artifact root is ./mlruns of the *current directory*, which for a
    # job is Ray's temporary copy of the working directory, deleted with the session.
    import sqlite3

    with sqlite3.connect(run_dir / "mlflow.db") as db:
        stages = [name for (name,) in db.execute("SELECT name FROM runs")]
        artifact_uris = [uri for (uri,) in db.execute("SELECT artifact_uri FROM runs")]
    assert {"quickstart/run", "generate", "score"} <= set(stages), stages  # stages nested under the run
    outside = [u for u in artifact_uris if not u.removeprefix("file://").startswith(str(run_dir))]
    assert not outside, f"MLflow artifacts written outside the run directory: {outside[:2]}"
    print(f"documented local submission: {elapsed:.1f}s from ray start to stop")
