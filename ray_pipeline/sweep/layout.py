"""A sweep directory's layout, shared by the sweep (which writes it) and the report (which reads it).

```
SWEEP_DIR/
  sweep.json            the search, launches, MLflow parent run, resource plan
  sweep.yaml            the sweep file as given (+ --set overrides)
  trials.json           every trial: key, variant, data group, resolved config
  data_stages.json      per launch: rows new / reused per data group
  data/                 the shared data store (prompts, generate, score rows and clips)
  trials/<key>/         a trial's run directory: trial.json, attempts.jsonl, trial_result.json,
                        config.yaml, train/, evaluate/, summary.json, report.md
  tune/                 Ray Tune's experiment (restored by a rerun)
```
"""

SWEEP_FILE = "sweep.json"
SWEEP_YAML = "sweep.yaml"
TRIALS_FILE = "trials.json"
DATA_STATS = "data_stages.json"
DATA_DIR = "data"
TRIALS_DIR = "trials"
TRIAL_SPEC = "trial.json"
TRIAL_RESULT = "trial_result.json"
TRIAL_ATTEMPTS = "attempts.jsonl"
TUNE_DIR = "tune"


def trial_dir(key: str) -> str:
    """A trial's run directory, relative to the sweep directory."""
    return f"{TRIALS_DIR}/{key}"
