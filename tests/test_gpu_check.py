"""bench/gpu_check.py in its CPU smoke mode, with the packages the device machine lacks blocked."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Not on the device machine (Ray's wheel is over what the device tool carries; PyAV, pyarrow and
# MLflow are not in its image): importing any of them must not be needed.
ABSENT = ["ray", "av", "pyarrow", "mlflow", "decord"]

pytestmark = pytest.mark.integration


def test_gpu_check_smoke_runs_every_section_without_ray(tmp_path):
    out = tmp_path / "check.json"
    script = (f"import runpy, sys\nfor m in {ABSENT!r}: sys.modules[m] = None\n"
              f"sys.argv = ['gpu_check.py', '--smoke', '--out', {str(out)!r}]\n"
              "runpy.run_path('bench/gpu_check.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
                               "HOME": str(tmp_path)}, check=False)
    report = json.loads(out.read_text())
    failed = {k: v.get("error") for k, v in report["sections"].items() if not v["pass"]}
    assert proc.returncode == 0 and report["pass"], (failed, proc.stderr[-2000:])
    assert set(report["sections"]) == {"cogvideox_2b", "wan_small", "ltx_small", "tcclip_train_ddp", "batched_eval"}
    assert report["seconds"] < 60
    cog = report["sections"]["cogvideox_2b"]["runs"]
    assert set(cog) == {"bfloat16", "float16"}
    assert set(cog["bfloat16"]) == {"none", "pab", "faster_cache", "first_block", "taylorseer", "mag"}
    for runs in cog.values():
        for kind, run in runs.items():
            assert run["finite"] and run["step_s"] > 0
            if kind != "none":
                assert 0 < run["rel_diff"] < 0.5 and run["speedup"] > 0
    train = report["sections"]["tcclip_train_ddp"]
    assert train["round_trip_same_weights"] and train["round_trip_max_abs"] == 0.0
    assert train["parameters_changed"] > 0 and train["backend"] == "gloo"
    assert report["sections"]["batched_eval"]["same_top1"]
    assert set(report["sections"]["wan_small"]["runs"]) == {"none", "first_block", "taylorseer", "mag"}
