"""Few-shot action recognition (the paper's Table 2).

For each K in ``few_shot.ks`` (the paper: 2, 4, 8, 16) the model is fine-tuned on the K-shot list
of split-1 train (ViFi-CLIP's ``train1_few_shot_K.txt``, one fixed draw per K, not nested) and
tested on split-1 test against every class name. Recipe and rows as in
:mod:`ray_pipeline.tasks.finetune`: ``backbone`` (untrained, the same for every K, as the paper's
Vanilla CLIP row), ``baseline`` (fine-tuned from the backbone on the K shots) and ``generated``
(pre-trained on the generated clips, then fine-tuned on the K shots); the pre-training does not
depend on K, so every K starts from the same one.

``summary.json``: ``datasets.<name>.k<K>.top1`` per row, ``{mean, std, ci95, n, ...}`` over the
cells (one training seed x split 1 in a run; a sweep adds seeds), with the reported epoch;
comparisons ``generated − baseline`` (and each against the backbone) per K.
"""

from __future__ import annotations

from typing import Any

from ray_pipeline.evaluation.datasets import Split
from ray_pipeline.evaluation.few_shot import (
    FewShotData,
    published_few_shot_files,
    read_few_shot,
    world_few_shot_files,
)
from ray_pipeline.stages.base import Inputs
from ray_pipeline.tasks.finetune import ROLES, FinetuneTask, ModelOutcome, metric_entry
from ray_pipeline.training.records import TrainingRecords

TEST_SPLIT = "val1"


class FewShotTask(FinetuneTask):
    name = "few_shot"
    section_name = "few_shot"
    selection_metric = "top-1"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._lists: dict[int, FewShotData] | None = None

    def list_keys(self) -> list[str]:
        return [f"k{k}" for k in self.cfg.few_shot.ks]

    def key_label(self, key: str) -> str:
        return f"K={key[1:]}"

    def lists(self) -> dict[int, FewShotData]:
        """Each K's lists, read and checked (K per class, none of them tested)."""
        if self._lists is None:
            folder = self.roots()[0]
            out = {}
            for k in self.cfg.few_shot.ks:
                files = (world_few_shot_files(folder, k) if self.data.is_world
                         else published_few_shot_files(folder, self.data.dataset, k))
                out[k] = read_few_shot(files, k)
            self._lists = out
        return self._lists

    def training_lists(self) -> dict[str, TrainingRecords]:
        return {f"k{k}": self.records(d.class_names, d.train) for k, d in self.lists().items()}

    def test_splits(self) -> list[tuple[str, Split]]:
        d = next(iter(self.lists().values()))  # every K is tested on the same split-1 test list
        return [(self.data.name, self.split(TEST_SPLIT, d.class_names, d.test))]

    def selection_value(self, model: ModelOutcome) -> float:
        return model.splits[TEST_SPLIT].top1()

    def summarize(self, results: Inputs) -> dict[str, Any]:
        reported = self.reported(self.outcomes(results))
        seed, ds, keys = self.cfg.train.seed, self.data.name, self.list_keys()
        train_videos = {f"k{k}": len(d.train) for k, d in self.lists().items()}
        rows: dict[str, dict[str, Any]] = {}
        cells: dict[tuple[str, str], dict] = {}
        for role in ROLES:
            entries: dict[str, Any] = {}
            for key in keys:
                rep = reported.get((role, None if role == "backbone" else key))
                if rep is None:
                    continue
                outcome = rep.model.splits[TEST_SPLIT]
                c = {(seed, TEST_SPLIT): outcome.top1()}
                cells[(role, f"{key}.top1")] = c
                entries[key] = {"top1": metric_entry(c, **self.epoch_fields(rep)),
                                "train_videos": 0 if role == "backbone" else train_videos[key],
                                "videos": len(outcome.y_true), "corrupt_videos": outcome.corrupt}
            if entries:
                rows[role] = {"label": self.row_label(role), "role": role, "seeds": self.seeds(role),
                              "datasets": {ds: entries}}
        summary = self.summary_base(results)
        summary["protocol"].update({
            "ks": list(self.cfg.few_shot.ks), "test": f"split-1 test ({TEST_SPLIT}) against all classes",
            "ci95": "Student-t over seeds (a run has one training seed: no interval)",
            "backbone": "the untrained backbone, the same model for every K"})
        return {"task": self.name, "rows": list(rows.values()),
                "comparisons": self.compare(rows, cells, [f"{k}.top1" for k in keys]),
                "data": summary["data"], "protocol": summary["protocol"]}
