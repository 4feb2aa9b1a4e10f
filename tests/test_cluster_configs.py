"""Every YAML in cluster/ is checked against what its tool requires, and docs/cluster.md's
commands are checked against cluster/submit.sh and the ray-pipeline CLI.

* Ray cluster-launcher configs go through Ray's own ``prepare_config`` + ``validate_config``
  (the JSON schema ``ray up`` uses), then through checks of what this project needs from them.
* KubeRay manifests have no schema in the Ray wheel; ``KUBERAY_FIELDS`` lists the ray.io/v1 fields
  (kuberay ``ray-operator/apis/ray/v1/*_types.go``, master at feeaf72, August 2026) so that a
  misspelt key fails here instead of being pruned by the API server, plus the Kubernetes rules the
  operator relies on (GPU requests equal to limits, mounted volumes that exist, string
  ``rayStartParams``).
* The runtime environment is parsed the way ``ray job submit --runtime-env`` parses it and
  built into a ``ray.runtime_env.RuntimeEnv``; its excludes are applied with Ray's packaging code.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import ray
import yaml

from tests.cluster_docs import (
    DOC,
    REPO,
    entrypoint,
    option,
    shell_blocks,
    submit_commands,
    walkthrough_commands,
)

CLUSTER = REPO / "cluster"
SUBMIT = CLUSTER / "submit.sh"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
RAY_IMAGE = f"rayproject/ray:{ray.__version__}-py311-gpu"
SHARED = "/mnt/shared"
IMAGE_WORKDIR = "/home/ray/ray_pipeline"  # WORKDIR of cluster/Dockerfile

# Accelerators and vCPUs of the instance types the launcher configs may use (provider docs).
INSTANCE_TYPES = {
    "m6i.2xlarge": (8, 0),
    "p4d.24xlarge": (96, 8),
    "p5.48xlarge": (192, 8),
    "n2-standard-8": (8, 0),
    "a2-highgpu-1g": (12, 1),
    "a2-highgpu-8g": (96, 8),
}

# ray.io/v1 spec fields (status fields left out: they are the operator's to write).
KUBERAY_FIELDS = {
    "RayClusterSpec": {
        "upgradeStrategy", "authOptions", "suspend", "managedBy", "autoscalerOptions",
        "headServiceAnnotations", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
        "historyServerOptions", "networkPolicy", "tlsOptions", "headGroupSpec", "rayVersion",
        "workerGroupSpecs",
    },
    "RayJobSpec": {
        "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
        "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint",
        "runtimeEnvYAML", "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus",
        "entrypointNumGpus", "ttlSecondsAfterFinished", "preRunningDeadlineSeconds",
        "shutdownAfterJobFinishes", "suspend",
    },
    "HeadGroupSpec": {"template", "headService", "enableIngress", "ingressOptions", "resources", "labels",
                      "rayStartParams", "serviceType"},
    "WorkerGroupSpec": {"suspend", "groupName", "replicas", "minReplicas", "maxReplicas",
                        "idleTimeoutSeconds", "priority", "resources", "labels", "rayStartParams",
                        "template", "scaleStrategy", "numOfHosts"},
    "AuthOptions": {"mode", "secretName", "enableK8sTokenAuth"},
    "SubmitterConfig": {"backoffLimit"},
}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


# ------------------------------------------------------------------------------------------------
# Which validator each file gets
# ------------------------------------------------------------------------------------------------


def load_all(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path}: empty"
    for d in docs:
        assert isinstance(d, dict), f"{path}: a document is not a mapping"
    return docs


def kind_of(doc: dict) -> str:
    if "apiVersion" in doc and "kind" in doc:
        return f"{doc['apiVersion']}/{doc['kind']}"
    if "cluster_name" in doc and "provider" in doc:
        return "ray-cluster-launcher"
    return "unknown"


YAML_FILES = sorted(p for p in CLUSTER.rglob("*") if p.suffix in (".yaml", ".yml"))
ALL_DOCS = [(p, d) for p in YAML_FILES for d in load_all(p)]


def docs_of(kind: str) -> list[tuple[Path, dict]]:
    return [(p, d) for p, d in ALL_DOCS if kind_of(d) == kind]


def test_every_cluster_yaml_has_a_validator():
    assert YAML_FILES, "cluster/ has no YAML"
    known = {"ray-cluster-launcher", "ray.io/v1/RayCluster", "ray.io/v1/RayJob", "v1/PersistentVolumeClaim",
             "apps/v1/Deployment", "v1/Service"}
    for path, doc in ALL_DOCS:
        if path == RUNTIME_ENV:
            continue
        assert kind_of(doc) in known, f"{path.relative_to(REPO)}: no validator for {kind_of(doc)!r}"
    # The deliverables exist: launchers for both clouds, a KubeRay cluster and job.
    providers = {d["provider"]["type"] for _, d in docs_of("ray-cluster-launcher")}
    assert providers == {"aws", "gcp"}
    assert docs_of("ray.io/v1/RayCluster") and docs_of("ray.io/v1/RayJob")


# ------------------------------------------------------------------------------------------------
# Runtime environment
# ------------------------------------------------------------------------------------------------


def validate_runtime_env(data: dict, where: str) -> None:
    from ray.runtime_env import RuntimeEnv

    public = {k for k in RuntimeEnv.known_fields if not k.startswith("_")}
    unknown = set(data) - public
    # Unknown keys are not errors to Ray (they are taken as plugin names) but silently do nothing.
    assert not unknown, f"{where}: not runtime_env fields: {sorted(unknown)}"
    RuntimeEnv(**copy.deepcopy(data))  # Ray's own type checks (env_vars str->str, config, ...)
    for key, value in data.get("env_vars", {}).items():
        assert isinstance(key, str) and isinstance(value, str), f"{where}: env_vars.{key} must be a string"


def test_runtime_env_parses_as_ray_job_submit_does():
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args

    env = parse_runtime_env_args(runtime_env=str(RUNTIME_ENV), working_dir=".")
    assert env["working_dir"] == "."
    raw = yaml.safe_load(RUNTIME_ENV.read_text())
    # The working directory comes from the command line; dependencies come from the nodes.
    assert "working_dir" not in raw
    assert not {"pip", "uv", "conda", "container", "image_uri"} & set(raw)
    validate_runtime_env(env, str(RUNTIME_ENV))


def test_runtime_env_excludes_keep_the_upload_small():
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    excludes = yaml.safe_load(RUNTIME_ENV.read_text())["excludes"]
    for required in (".venv", ".git", "runs"):
        assert required in excludes, f"runtime env must exclude {required}"
    uploaded: list[Path] = []
    # Ray's own traversal, with .gitignore ignored: the excludes alone must keep the big trees out.
    _dir_travel(REPO, [_get_excludes(REPO, excludes)], lambda p: p.is_file() and uploaded.append(p),
                include_gitignore=False)
    rel = [p.relative_to(REPO) for p in uploaded]
    assert Path("ray_pipeline/cli.py") in rel and Path("cluster/runtime_env.yaml") in rel
    for top in (".venv", ".git", "runs"):
        assert not [r for r in rel if r.parts[0] == top], f"{top}/ would be uploaded"
    size = sum(p.stat().st_size for p in uploaded)
    assert size < 100 * 2**20, f"working_dir upload would be {size / 2**20:.0f} MiB"


# ------------------------------------------------------------------------------------------------
# Ray cluster launcher (ray up)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [p for p, _ in docs_of("ray-cluster-launcher")], ids=lambda p: p.name)
def test_launcher_config(path: Path):
    check_launcher(yaml.safe_load(path.read_text()))


def check_launcher(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))  # what `ray up` does before launching
    validate_config(prepared)  # Ray's JSON schema: required keys, no unknown ones

    provider = config["provider"]
    assert provider["type"] in ("aws", "gcp") and provider["region"]
    if provider["type"] == "gcp":
        assert provider["availability_zone"].startswith(provider["region"]) and provider["project_id"]
    assert config["docker"]["image"] == RAY_IMAGE, "nodes must run the Ray version the client has"
    run_options = " ".join(config["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in run_options, "token auth must be on for every node"
    assert f"--volume {SHARED}:{SHARED}" in run_options, "shared storage must be visible in the container"
    assert re.search(rf"HF_HOME={SHARED}/", run_options), "the HF cache must be on shared storage"
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    for top in (".git", ".venv", "runs"):
        assert top in config["rsync_exclude"]

    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0
    gpu_types = {name: t for name, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert gpu_types, "no GPU worker group"
    assert any(t.get("min_workers", 0) >= 1 for t in gpu_types.values()), (
        "stage actor pools are sized from the GPUs present at job start: keep one GPU group up")
    assert sum(t.get("max_workers", 0) for n, t in types.items() if n != config["head_node_type"]) <= (
        config["max_workers"])
    for name, node_type in types.items():
        nc = node_type["node_config"]
        itype = nc["InstanceType"] if provider["type"] == "aws" else nc["machineType"]
        assert itype in INSTANCE_TYPES, f"{name}: unknown instance type {itype}; add it to INSTANCE_TYPES"
        vcpus, gpus = INSTANCE_TYPES[itype]
        assert node_type["resources"].get("GPU", 0) == gpus, f"{name}: GPU resource != {itype}'s {gpus} GPUs"
        assert node_type["resources"].get("CPU", 0) <= vcpus, f"{name}: more CPUs than {itype} has"
        if provider["type"] == "aws":
            assert nc["ImageId"].startswith(("ami-", "resolve:ssm:")), f"{name}: ImageId"
            assert nc["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] >= 200, f"{name}: disk too small"
        else:
            boot = [d for d in nc["disks"] if d.get("boot")]
            assert boot and boot[0]["initializeParams"]["sourceImage"].startswith("projects/"), name
            assert boot[0]["initializeParams"]["diskSizeGb"] >= 200, f"{name}: disk too small"
            if gpus:
                scheduling = {k: v for item in nc["scheduling"] for k, v in item.items()}
                assert scheduling.get("onHostMaintenance") == "TERMINATE", f"{name}: GPU VMs cannot migrate"

    init = " ".join(config["initialization_commands"])
    assert f" {SHARED}" in init and "mount" in init, "shared storage must be mounted on every host"
    setup = " ".join(config["setup_commands"])
    assert "-r ~/ray_pipeline/requirements.lock" in setup and "--no-deps ~/ray_pipeline" in setup
    assert config["file_mounts"].get("~/ray_pipeline") == "."
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--head" in head_start and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    assert "mlflow server" in head_start and f"sqlite:///{SHARED}/" in head_start
    assert 'export OPENAI_API_KEY="$(cat ~/.ray/openai_api_key)"' in head_start, "the driver's OpenAI key"
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in worker_start
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in worker_start


# ------------------------------------------------------------------------------------------------
# KubeRay and Kubernetes manifests
# ------------------------------------------------------------------------------------------------


def check_keys(obj: dict, type_name: str, where: str) -> None:
    unknown = set(obj) - KUBERAY_FIELDS[type_name]
    assert not unknown, f"{where}: {sorted(unknown)} are not {type_name} fields"


def check_pod_template(template: dict, where: str, gpu: bool) -> list[dict]:
    spec = template["spec"]
    containers = spec["containers"]
    assert containers, f"{where}: no containers"
    ray_container = containers[0]  # KubeRay runs `ray start` in the first container
    assert ray_container["name"] and ray_container["image"], f"{where}: container needs name and image"
    res = ray_container["resources"]
    for key in ("cpu", "memory"):
        assert key in res["limits"], f"{where}: set resources.limits.{key} (Ray sizes the node from it)"
    gpu_limit = int(res["limits"].get("nvidia.com/gpu", 0))
    if gpu:
        assert gpu_limit >= 1, f"{where}: a GPU group needs resources.limits['nvidia.com/gpu']"
        # Kubernetes rejects extended-resource requests that differ from their limits.
        assert str(res.get("requests", {}).get("nvidia.com/gpu", gpu_limit)) == str(gpu_limit)
    else:
        assert gpu_limit == 0, f"{where}: the head should not hold a GPU"
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in containers:
        for mount in c.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{where}: volumeMount {mount['name']} has no volume"
    mounts = {m["mountPath"]: m["name"] for m in ray_container.get("volumeMounts", [])}
    assert SHARED in mounts, f"{where}: shared storage must be mounted at {SHARED}"
    claim = volumes[mounts[SHARED]].get("persistentVolumeClaim", {}).get("claimName")
    assert claim in shared_claims(), f"{where}: {SHARED} must be cluster/kuberay/shared-storage.yaml's PVC"
    env = {e["name"]: e.get("value") for e in ray_container.get("env", [])}
    assert env.get("HF_HOME", "").startswith(SHARED + "/"), f"{where}: HF_HOME must be on shared storage"
    assert env.get("MLFLOW_TRACKING_URI") == mlflow_service_uri(), f"{where}: MLFLOW_TRACKING_URI"
    return containers


def shared_claims() -> set[str]:
    claims = set()
    for path, doc in docs_of("v1/PersistentVolumeClaim"):
        assert "ReadWriteMany" in doc["spec"]["accessModes"], f"{path}: shared storage must be ReadWriteMany"
        claims.add(doc["metadata"]["name"])
    return claims


def mlflow_service_uri() -> str:
    services = [d for _, d in docs_of("v1/Service") if "mlflow" in d["metadata"]["name"]]
    assert len(services) == 1
    svc = services[0]
    return f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"


def check_ray_cluster_spec(spec: dict, where: str) -> int:
    """Validates a RayClusterSpec; returns the GPUs its workers have at start."""
    check_keys(spec, "RayClusterSpec", where)
    assert spec["rayVersion"] == ray.__version__, f"{where}: rayVersion must be {ray.__version__}"
    check_keys(spec["authOptions"], "AuthOptions", where)
    assert spec["authOptions"]["mode"] == "token", f"{where}: token auth (authOptions.mode: token)"
    head = spec["headGroupSpec"]
    check_keys(head, "HeadGroupSpec", f"{where}.headGroupSpec")
    for k, v in head.get("rayStartParams", {}).items():
        assert isinstance(v, str), f"{where}: rayStartParams.{k} must be a string (KubeRay's type)"
    head_containers = check_pod_template(head["template"], f"{where}.headGroupSpec", gpu=False)
    images = {head_containers[0]["image"]}
    groups = spec["workerGroupSpecs"]
    assert groups, f"{where}: no worker groups"
    gpus_at_start = 0
    for g in groups:
        gw = f"{where}.workerGroupSpecs[{g['groupName']}]"
        check_keys(g, "WorkerGroupSpec", gw)
        assert 0 <= g["minReplicas"] <= g.get("replicas", g["minReplicas"]) <= g["maxReplicas"], gw
        for k, v in g.get("rayStartParams", {}).items():
            assert isinstance(v, str), f"{gw}: rayStartParams.{k} must be a string"
        containers = check_pod_template(g["template"], gw, gpu=True)
        images.add(containers[0]["image"])
        tolerations = g["template"]["spec"].get("tolerations", [])
        assert any(t.get("key") == "nvidia.com/gpu" for t in tolerations), f"{gw}: tolerate the GPU taint"
        gpus_at_start += g["minReplicas"] * int(containers[0]["resources"]["limits"]["nvidia.com/gpu"])
    assert len(images) == 1, f"{where}: head and workers must run one image, got {images}"
    assert gpus_at_start >= 1, f"{where}: stage actor pools need GPUs present when the job starts"
    return gpus_at_start


@pytest.mark.parametrize("path,doc", docs_of("ray.io/v1/RayCluster"), ids=lambda x: getattr(x, "name", ""))
def test_raycluster(path: Path, doc: dict):
    assert doc["metadata"]["name"]
    check_ray_cluster_spec(doc["spec"], f"{path.name}.spec")
    # The dashboard must listen beyond localhost for `kubectl port-forward` to reach it.
    assert doc["spec"]["headGroupSpec"]["rayStartParams"].get("dashboard-host") == "0.0.0.0"


@pytest.mark.parametrize("path,doc", docs_of("ray.io/v1/RayJob"), ids=lambda x: getattr(x, "name", ""))
def test_rayjob(path: Path, doc: dict):
    check_rayjob(path, doc)


def check_rayjob(path: Path, doc: dict) -> None:
    spec = doc["spec"]
    check_keys(spec, "RayJobSpec", path.name)
    gpus = check_ray_cluster_spec(spec["rayClusterSpec"], f"{path.name}.spec.rayClusterSpec")
    assert spec["shutdownAfterJobFinishes"] is True, "the GPUs must be released when the job ends"
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] >= 0
    assert spec.get("submissionMode", "K8sJobMode") in SUBMISSION_MODES
    check_keys(spec.get("submitterConfig", {}), "SubmitterConfig", path.name)
    assert spec["rayClusterSpec"].get("enableInTreeAutoscaling") is not True, (
        "a job's cluster is sized for the job: replicas fixed, no autoscaler")

    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    validate_runtime_env(runtime_env, f"{path.name}: runtimeEnvYAML")
    # The same variables a job sent with cluster/submit.sh gets.
    assert runtime_env["env_vars"] == yaml.safe_load(RUNTIME_ENV.read_text())["env_vars"]
    assert "working_dir" not in runtime_env, "a RayJob runs the code baked into the image"

    argv = shlex.split(spec["entrypoint"])
    configs = check_entrypoint(argv, f"{path.name}: entrypoint", image=True)
    assert configs, f"{path.name}: the entrypoint runs no experiment"
    for cfg in configs:
        # Stages size their pools from the GPUs present: asking for more fails the job at start.
        need = gpus_needed(cfg)
        assert need <= gpus, f"{path.name}: {cfg.name} needs {need} GPUs, the job has {gpus}"
    # The job's cluster is sized for the job: no GPU idles for the whole run.
    assert max(gpus_needed(cfg) for cfg in configs) == gpus, f"{path.name}: GPUs the job never uses"
    if any(cfg.prompts.writer == "openai" for cfg in configs):
        head_env = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
        key = next((e for e in head_env if e["name"] == "OPENAI_API_KEY"), None)
        assert key and key["valueFrom"]["secretKeyRef"]["name"], f"{path.name}: driver needs OPENAI_API_KEY"


def test_validators_reject_broken_configs():
    """Negative controls: each validator above fails on a typical mistake."""
    (aws,) = [d for _, d in docs_of("ray-cluster-launcher") if d["provider"]["type"] == "aws"]
    (_, rc), (job_path, job) = docs_of("ray.io/v1/RayCluster")[0], docs_of("ray.io/v1/RayJob")[0]

    def fails(check, *args) -> None:
        with pytest.raises(Exception):  # noqa: B017  (any rejection will do: the validators differ)
            check(*args)

    bad = copy.deepcopy(aws)
    a100 = bad["available_node_types"]["gpu_a100"]
    a100["node_cofig"] = a100.pop("node_config")
    fails(check_launcher, bad)  # Ray's schema: node_config is required
    bad = copy.deepcopy(aws)
    bad["available_node_types"]["gpu_a100"]["resources"]["GPU"] = 4
    fails(check_launcher, bad)  # a p4d.24xlarge has 8 GPUs
    bad = copy.deepcopy(aws)
    bad["docker"]["run_options"] = [o for o in bad["docker"]["run_options"] if "RAY_AUTH_MODE" not in o]
    fails(check_launcher, bad)

    bad = copy.deepcopy(rc["spec"])
    worker = bad["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["resources"]["limits"].pop("nvidia.com/gpu")
    fails(check_ray_cluster_spec, bad, "broken")
    bad = copy.deepcopy(rc["spec"])
    bad["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # KubeRay wants strings
    fails(check_ray_cluster_spec, bad, "broken")
    bad = copy.deepcopy(job)
    bad["spec"]["shutdownAfterJobFinish"] = bad["spec"].pop("shutdownAfterJobFinishes")
    fails(check_rayjob, job_path, bad)
    bad = copy.deepcopy(job)
    bad["spec"]["entrypoint"] += " --set generate.pool.actors=16"
    fails(check_rayjob, job_path, bad)  # 16 one-GPU actors on an 8-GPU job cluster
    check_rayjob(job_path, job)  # (and the unbroken one passes)

    fails(validate_runtime_env, {"env_var": {"A": "b"}}, "broken")  # misspelt: Ray would ignore it
    fails(validate_runtime_env, {"env_vars": {"A": 1}}, "broken")


def test_kubernetes_manifests():
    for path, doc in docs_of("apps/v1/Deployment"):
        spec = doc["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), path
        check_image(spec["template"]["spec"]["containers"][0]["image"], str(path))
    for path, doc in docs_of("v1/Service"):
        selected = [d for _, d in docs_of("apps/v1/Deployment")
                    if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                           for k, v in doc["spec"]["selector"].items())]
        assert selected, f"{path}: service {doc['metadata']['name']} selects no pod"
    assert shared_claims() == {"ray-pipeline-shared"}


def check_image(image: str, where: str) -> None:
    # One image for every pod: the one built from cluster/Dockerfile.
    kuberay_images = {
        c["image"]
        for _, d in docs_of("ray.io/v1/RayCluster")
        for c in d["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    }
    assert {image} == kuberay_images, f"{where}: image {image} differs from the RayCluster's {kuberay_images}"


def test_dockerfile_matches_the_launchers():
    text = (CLUSTER / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms == [RAY_IMAGE]
    for src in re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+\S+$", text, re.M):
        assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"
    assert re.search(rf"^WORKDIR {IMAGE_WORKDIR}$", text, re.M)
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    for top in (".git", ".venv", "runs"):
        assert top in ignored


def test_values_to_set_are_documented():
    """Account-specific values are marked EDIT_ME_*; each is explained in docs/cluster.md."""
    doc = DOC.read_text()
    markers = set()
    for path in CLUSTER.rglob("*"):
        if path.is_file():
            markers |= set(re.findall(r"EDIT_ME_[A-Z0-9_]+", path.read_text()))
    assert markers, "expected the account-specific values to be marked"
    for marker in sorted(markers):
        assert f"`{marker}`" in doc, f"docs/cluster.md does not say what to put in {marker}"


# ------------------------------------------------------------------------------------------------
# cluster/submit.sh and the commands in docs/cluster.md
# ------------------------------------------------------------------------------------------------


def run_submit(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SUBMIT), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def dry_run(submit_argv: list[str]) -> list[str]:
    """The `ray job submit` argv that a documented submit.sh command runs."""
    assert submit_argv[0] == "cluster/submit.sh"
    split = submit_argv.index("--")
    proc = run_submit(*submit_argv[1:split], "--dry-run", *submit_argv[split:])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def check_entrypoint(argv: list[str], where: str, image: bool = False) -> list:
    """A `ray-pipeline ...` entrypoint: valid CLI, existing config, shared paths, valid overrides.

    Returns the experiment configs it would run (every trial's for a sweep, none for a report).
    """
    from ray_pipeline.cli import build_parser
    from ray_pipeline.config import load_config
    from ray_pipeline.sweep.space import load_sweep

    assert argv[0] == "ray-pipeline", f"{where}: entrypoint must be the ray-pipeline command"
    args = build_parser().parse_args(argv[1:])

    def absolute(path: str) -> bool:
        # A relative path would resolve inside the job's temporary copy of the working directory.
        return path.startswith(("/", "$PWD/")) or "://" in path

    def shared(path: str | None) -> bool:
        return path is not None and (path.startswith(SHARED + "/") or "://" in path)

    if args.command == "report":
        for path in args.path:
            assert absolute(path), f"{where}: report path {path} must be absolute or a URI"
        return []
    config = args.config
    if image:
        assert config.startswith(IMAGE_WORKDIR + "/"), f"{where}: use the image's absolute config path"
        config = config[len(IMAGE_WORKDIR) + 1:]
    assert (REPO / config).is_file(), f"{where}: {config} does not exist"
    run_dir = args.run_dir
    assert run_dir, f"{where}: give --run-dir explicitly"
    assert absolute(run_dir), f"{where}: --run-dir must be absolute or a URI"
    with tempfile.TemporaryDirectory() as tmp:
        # The experiment validator wants the datasets on disk; a stand-in tree of empty files has
        # the paths the file names, under a temporary directory instead of /mnt/shared/datasets.
        staged = stand_in_datasets(REPO / config, Path(tmp))
        if args.command == "sweep":
            configs = [t.config for t in load_sweep(staged, args.set).trials]
        else:
            configs = [load_config(staged, args.set)]
    if shared(run_dir):
        # A cluster run: everything another node reads must be on shared storage too.
        for cfg in configs:
            assert shared(cfg.cache_dir), f"{where}: cache_dir {cfg.cache_dir} is node-local"
            assert cfg.data_dir is None or shared(cfg.data_dir), f"{where}: data_dir {cfg.data_dir} is local"
            if cfg.generate.backend == "cogvideox":
                assert shared(cfg.generate.weights_cache), f"{where}: generate.weights_cache must be shared"
    return configs


def stand_in_datasets(config: Path, tmp: Path) -> Path:
    """A copy of ``config`` whose ``/mnt/shared/datasets`` is ``tmp``, populated with empty files."""
    text = config.read_text().replace(f"{SHARED}/datasets", str(tmp / "datasets"))

    def walk(node) -> None:
        if isinstance(node, dict):
            if "root" in node and "splits" in node and str(node["root"]).startswith(str(tmp)):
                Path(node["root"]).mkdir(parents=True, exist_ok=True)
                base = Path(node.get("splits_dir") or node["root"])
                for split in node["splits"]:
                    for key in ("list", "labels"):
                        (base / split[key]).parent.mkdir(parents=True, exist_ok=True)
                        (base / split[key]).touch()
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(text))
    copy_path = tmp / config.name
    copy_path.write_text(text)
    return copy_path


def gpus_needed(cfg) -> float:
    """The most GPUs any one stage of ``cfg`` asks for at once."""
    pools = [cfg.generate.pool, cfg.score.pool, cfg.evaluate.pool]
    need = [p.actors * p.num_gpus for p in pools]
    if cfg.train.use_gpu:
        need.append(cfg.train.num_workers)
    return max(need)


def test_documented_submit_commands_run_ray_job_submit_as_required():
    commands = submit_commands()
    assert len(commands) >= 2, "docs/cluster.md should show the quickstart and a paper-scale submission"
    for argv in commands:
        where = f"docs/cluster.md: {shlex.join(argv)}"
        ray_argv = dry_run(argv)
        assert ray_argv[:3] == ["ray", "job", "submit"], where
        opts = ray_argv[: ray_argv.index("--")]
        assert option(opts, "--working-dir") == ".", where
        assert option(opts, "--runtime-env") == "cluster/runtime_env.yaml", where
        assert "--no-wait" in opts, where
        assert option(opts, "--submission-id"), where
        assert entrypoint(ray_argv) == entrypoint(argv), f"{where}: entrypoint changed on the way"
        check_entrypoint(entrypoint(argv), where)


def test_documented_follow_commands_name_the_submitted_job():
    for block in shell_blocks():
        ids = {option(c[: c.index("--")], "--submission-id") for c in block if c[0] == "cluster/submit.sh"}
        for c in block:
            if c[:3] in (["ray", "job", "logs"], ["ray", "job", "status"], ["ray", "job", "stop"]):
                assert c[-1] in ids, f"docs/cluster.md: {shlex.join(c)} names no job submitted in its block"


def test_tested_block_is_what_the_integration_test_runs():
    commands = walkthrough_commands()
    heads = [c[:3] for c in commands]
    assert ["ray", "start", "--head"] in heads and commands[-1] == ["ray", "stop"]
    assert ["export", "RAY_AUTH_MODE=token"] in commands
    assert heads.index(["ray", "start", "--head"]) > commands.index(["export", "RAY_AUTH_MODE=token"])
    (submit,) = [c for c in commands if c[0] == "cluster/submit.sh"]
    assert entrypoint(submit)[:3] == ["ray-pipeline", "run", "experiments/quickstart.yaml"]


def test_submit_defaults_and_errors(tmp_path):
    env = {"RAY_API_SERVER_ADDRESS": "http://10.1.2.3:8265"}
    out = run_submit("--dry-run", "--", "ray-pipeline", "run", "x.yaml", env=env)
    assert out.returncode == 0, out.stderr
    argv = out.stdout.splitlines()
    assert option(argv, "--address") == "http://10.1.2.3:8265"
    assert re.fullmatch(r"rp-\d{8}-\d{6}-[0-9a-f]{8}|rp-\d{8}-\d{6}-unknown", option(argv, "--submission-id"))
    assert argv[-4:] == ["--", "ray-pipeline", "run", "x.yaml"]

    # Called from elsewhere, a relative --runtime-env is resolved before the script moves to the root.
    other = tmp_path / "env.yaml"
    other.write_text("env_vars: {A: 'b'}\n")
    out = run_submit("--runtime-env", "env.yaml", "--dry-run", "--", "true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert option(out.stdout.splitlines(), "--runtime-env") == str(other)

    assert run_submit("--dry-run").returncode == 2  # no entrypoint
    assert run_submit("--bogus", "--", "true").returncode == 2
    assert run_submit("--runtime-env", "missing.yaml", "--", "true").returncode == 2
    assert subprocess.run(["bash", "-n", str(SUBMIT)]).returncode == 0
    assert os.access(SUBMIT, os.X_OK)


# ------------------------------------------------------------------------------------------------
# cluster/estimate.py and the cost tables in docs/cluster.md
# ------------------------------------------------------------------------------------------------


def run_estimate(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(CLUSTER / "estimate.py"), *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_docs_cost_tables_are_the_estimate_output():
    doc = DOC.read_text()
    block = doc.split("<!-- estimate.py output -->\n", 1)[1].split("<!-- end estimate.py output -->", 1)[0]
    assert block.strip() == run_estimate().strip(), "regenerate the tables with `python cluster/estimate.py`"


def test_estimate_arithmetic():
    out = run_estimate("--gpus", "4", "--price", "A100=2")
    # HMDB-51: 51 classes x 128 clips x 90 s = 163.2 A100-hours, 40.8 h on 4 GPUs, $326 at $2/h.
    hmdb = next(line for line in out.splitlines() if line.startswith("| HMDB-51 |"))
    assert "| 6,528 | 163.2 | 81.6 | 40.8 h | 20.4 h |" in hmdb
    table1 = next(line for line in out.splitlines() if line.startswith("| 1 zero-shot |"))
    assert table1.endswith("| 47,616 | 47,616 | 1,190.4 | 595.2 | 297.6 h | 148.8 h | $2,381 |")
    # Table 6 adds only the three other prompt strategies (HMDB-51 ie was generated for Table 1).
    table6 = next(line for line in out.splitlines() if line.startswith("| 6 "))
    assert "| 26,112 | 19,584 |" in table6


def test_estimate_from_a_run_directory(tmp_path):
    import pyarrow as pa

    from ray_pipeline.runstore import RunStore

    store = RunStore(tmp_path / "run")
    manifest = store.manifest("generate", "clip_id")
    manifest.write_part(pa.table({"clip_id": ["a", "b"], "gen_seconds": [30.0, 50.0]}))
    manifest.write_part(pa.table({"clip_id": ["c"], "gen_seconds": [40.0]}))
    out = run_estimate("--from-run", str(tmp_path / "run"), "--gpu-name", "L4", "--gpus", "2")
    # 40 s per clip: HMDB-51's 6,528 clips take 72.5 L4-hours, 36.3 h on 2 GPUs.
    assert "| HMDB-51 | 51 | 6,528 | 72.5 | 36.3 h |" in out


def test_estimate_backends_and_speedups():
    # Wan 2.1 1.3B on an A100: 259.7 s per clip (FastVideo PR #1366): 6,528 x 259.7 s = 470.9 h,
    # 117.7 h on 4 GPUs; torch.compile 198.1 s: 359.2 h.
    wan = run_estimate("--backend", "wan", "--gpus", "4")
    assert "| HMDB-51 | 51 | 6,528 | 470.9 | 435.2 | 117.7 h | 108.8 h |" in wan
    compiled = run_estimate("--backend", "wan", "--speedup", "compile")
    assert "| HMDB-51 | 51 | 6,528 | 359.2 |" in compiled
    # CogVideoX with PAB: 90 s x 184.0/245.9 = 67.3 s: 122.1 A100-hours for HMDB-51.
    assert "| HMDB-51 | 51 | 6,528 | 122.1 | 61.1 |" in run_estimate("--speedup", "pab")
    # FasterCache: 90 x 159.0/245.9 = 58.2 s: 105.5 A100-hours.
    assert "| HMDB-51 | 51 | 6,528 | 105.5 |" in run_estimate("--speedup", "faster_cache")
    # LTX-Video: a 161-frame 24 fps clip in real time on an H100 (161/24 s): 12.2 H100-hours.
    ltx = run_estimate("--backend", "ltx")
    assert "| HMDB-51 | 51 | 6,528 | 12.2 | 1.5 h |" in ltx and "A100" not in ltx


def test_estimate_refuses_what_is_not_published():
    def fails(*args: str) -> str:
        proc = subprocess.run([sys.executable, str(CLUSTER / "estimate.py"), *args], check=False, capture_output=True,
                              text=True, timeout=60, cwd=REPO)
        assert proc.returncode != 0
        return proc.stderr

    assert "no published figure for 'pab' on wan" in fails("--backend", "wan", "--speedup", "pab")
    assert "unknown 'sora'" in fails("--backend", "sora")
    assert "already includes" in fails("--speedup", "pab", "--seconds-per-clip", "A100=10")


def test_every_backend_and_cache_has_a_figure_or_is_named_missing():
    import importlib.util

    from ray_pipeline.config import GenerateConfig, supported_caches

    spec = importlib.util.spec_from_file_location("estimate", CLUSTER / "estimate.py")
    estimate = importlib.util.module_from_spec(spec)
    sys.modules["estimate"] = estimate  # dataclasses look their module up while the file executes
    spec.loader.exec_module(estimate)
    diffusers_backends = [b for b in GenerateConfig.model_fields["backend"].annotation.__args__ if b != "procedural"]
    assert sorted(estimate.BACKENDS) == sorted(diffusers_backends) == sorted(estimate.SPEEDUPS)
    text = (CLUSTER / "estimate.py").read_text()
    for backend in diffusers_backends:
        assert estimate.BACKENDS[backend], backend
        for speedup in estimate.SPEEDUPS[backend]:
            assert speedup == "compile" or speedup in supported_caches(backend), (backend, speedup)
    # The caches without a published figure are named as such in the file.
    assert "Without a published figure: First Block Cache, TaylorSeer and MagCache" in text


def test_docs_backend_table_is_the_estimate_list_output():
    doc = DOC.read_text()
    block = doc.split("<!-- estimate.py --list output -->\n", 1)[1]
    block = block.split("<!-- end estimate.py --list output -->", 1)[0]
    assert block.strip() == run_estimate("--list").strip(), "regenerate with `python cluster/estimate.py --list`"
