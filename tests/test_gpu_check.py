"""bench/gpu_check.py in its CPU smoke mode, with the packages the device machine lacks blocked."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Not on the device machine (Ray's wheel is over what the device tool carries; PyAV and MLflow are
# not in its image) or not needed there (pyarrow): importing any of them must not be needed. decord
# travels as a wheel (bench/gpu_check.sh).
ABSENT = ["ray", "av", "pyarrow", "mlflow"]

pytestmark = pytest.mark.integration


def test_gpu_check_smoke_runs_every_section_without_ray(tmp_path):
    out = tmp_path / "check.json"
    # The device writes its clips with OpenCV (it has no PyAV); here PyAV writes them beforehand.
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_check import write_clips

    _, codec = write_clips(tmp_path / "clips", 8, 12, 48, 64)
    assert codec == "h264 (PyAV)"
    script = (f"import runpy, sys\nfor m in {ABSENT!r}: sys.modules[m] = None\n"
              f"sys.argv = ['gpu_check.py', '--smoke', '--out', {str(out)!r}, '--clips', {str(tmp_path / 'clips')!r}]\n"
              "runpy.run_path('bench/gpu_check.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
                               "HOME": str(tmp_path)}, check=False)
    report = json.loads(out.read_text())
    failed = {k: v.get("error") for k, v in report["sections"].items() if not v["pass"]}
    assert proc.returncode == 0 and report["pass"], (failed, proc.stderr[-2000:])
    assert set(report["sections"]) == {"cogvideox_2b", "wan_small", "ltx_small", "tcclip_train_ddp", "batched_eval",
                                       "input_pipeline"}
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
    evaluation = report["sections"]["batched_eval"]
    assert evaluation["same_top1"] and evaluation["cached_text_videos_per_s"] > 0
    feed = report["sections"]["input_pipeline"]
    assert feed["codec"] == "given (--clips)" and feed["loader"].startswith("1 decoding process")
    assert feed["loader_clips_per_s"] > 0 and feed["step_clips_per_s"] > 0 and feed["fed_clips_per_s"] > 0
    assert feed["finite"] and feed["host_syncs_per_epoch"] == 0
    assert set(report["sections"]["wan_small"]["runs"]) == {"none", "first_block", "taylorseer", "mag"}
