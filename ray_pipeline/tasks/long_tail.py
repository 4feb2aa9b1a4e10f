"""Long-tail action recognition (the paper's Table 4, following Perrett et al., CVPR 2023).

A long-tailed training set is drawn from split-1 train with a stated, seeded exponential profile
(``long_tail.n_max``, ``imbalance``, ``profile_seed``; ``evaluation/long_tail.py``), at both
scales the same way: from a world dataset's ``splits/train1.txt``, or from the official split-1
training list (HMDB-51's ``<class>_test_split1.txt`` files, UCF-101's ``trainlist01.txt``; ViFi-CLIP
ships no split-1 train list). The test set is split-1 test made class-balanced. Classes fall into
Head (the most populous classes up to the one whose cumulative share first reaches 50 % of the
training samples), Few (at most 20 samples; Few wins over Head) and Tail (the rest). Rows as in
:mod:`ray_pipeline.tasks.finetune`; one fine-tune of each kind on the one long-tailed set.

``summary.json``: ``datasets.<name>.acc`` (mean per-class top-1), ``.head``, ``.tail``, ``.few``
(each group's mean per-class accuracy; None for a group without classes), each ``{mean, std, ci95,
n, ...}``; ``protocol.long_tail`` holds the profile, the realised I = n_max/n_min, head %, tail %,
few %, and every class's count and group.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.evaluation.datasets import Split, read_labels, read_split_list
from ray_pipeline.evaluation.long_tail import (
    GROUPS,
    LongTailAccuracy,
    LongTailGroups,
    LongTailProfile,
    assign_groups,
    balanced_test,
    long_tail_accuracy,
    long_tail_stats,
    sample_long_tail,
)
from ray_pipeline.evaluation.official_splits import read_hmdb_official_split, read_ucf_official_split
from ray_pipeline.stages.base import Inputs
from ray_pipeline.tasks.finetune import ROLES, FinetuneTask, ModelOutcome, metric_entry
from ray_pipeline.training.records import TrainingRecords

KEY = "lt"
TEST_SPLIT = "val1_balanced"
METRICS = ("acc", *GROUPS)


class LongTailTask(FinetuneTask):
    name = "long_tail"
    section_name = "long_tail"
    selection_metric = "mean per-class accuracy"

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        if not self.data.is_world and self.data.label_fix != "none":
            raise ConfigError("long_tail.data.label_fix: the official split files name each class by its folder "
                              "(the right names for its videos); nothing to fix")
        self._drawn: dict[str, Any] | None = None

    def profile(self) -> LongTailProfile:
        lt = self.cfg.long_tail
        return LongTailProfile(n_max=lt.n_max, imbalance=lt.imbalance, seed=lt.profile_seed)

    def list_keys(self) -> list[str]:
        return [KEY]

    def key_label(self, key: str) -> str:
        return ""

    def drawn(self) -> dict[str, Any]:
        """Class names, the long-tailed training rows, their counts and groups, the balanced test."""
        if self._drawn is None:
            lt = self.cfg.long_tail
            folder = self.roots()[0]
            if self.data.is_world:
                names = read_labels(folder / "labels.csv")
                train = read_split_list(folder / "splits" / "train1.txt", len(names))
                test = read_split_list(folder / "splits" / "val1.txt", len(names))
            else:
                reader = read_hmdb_official_split if self.data.dataset == "hmdb51" else read_ucf_official_split
                split = reader(folder, 1, flat=True)
                names, train, test = split.class_names, split.train, split.test
            rows, counts = sample_long_tail(train, len(names), self.profile())
            self._drawn = {"names": names, "train": rows, "counts": counts, "groups": assign_groups(counts),
                           "test": balanced_test(test, len(names), lt.test_per_class, seed=lt.profile_seed)}
        return self._drawn

    def groups(self) -> LongTailGroups:
        return self.drawn()["groups"]

    def training_lists(self) -> dict[str, TrainingRecords]:
        d = self.drawn()
        return {KEY: self.records(d["names"], d["train"])}

    def test_splits(self) -> list[tuple[str, Split]]:
        d = self.drawn()
        return [(self.data.name, self.split(TEST_SPLIT, d["names"], d["test"]))]

    def accuracy(self, model: ModelOutcome) -> LongTailAccuracy:
        s = model.splits[TEST_SPLIT]
        return long_tail_accuracy(s.y_true, s.y_pred, self.groups())

    def selection_value(self, model: ModelOutcome) -> float:
        return self.accuracy(model).acc

    def summarize(self, results: Inputs) -> dict[str, Any]:
        reported = self.reported(self.outcomes(results))
        seed, ds = self.cfg.train.seed, self.data.name
        rows: dict[str, dict[str, Any]] = {}
        cells: dict[tuple[str, str], dict] = {}
        for role in ROLES:
            rep = reported.get((role, None if role == "backbone" else KEY))
            if rep is None:
                continue
            acc = self.accuracy(rep.model)
            entry: dict[str, Any] = {}
            for metric in METRICS:
                value = getattr(acc, metric)
                if value is None:  # a group without classes
                    entry[metric] = None
                    continue
                c = {(seed, TEST_SPLIT): value}
                cells[(role, metric)] = c
                entry[metric] = metric_entry(c, **(self.epoch_fields(rep) if metric == "acc" else {}))
            outcome = rep.model.splits[TEST_SPLIT]
            entry.update(per_class=list(acc.per_class), videos=len(outcome.y_true), corrupt_videos=outcome.corrupt)
            rows[role] = {"label": self.row_label(role), "role": role, "seeds": self.seeds(role),
                          "datasets": {ds: entry}}
        d = self.drawn()
        stats = long_tail_stats(d["counts"], d["groups"])
        summary = self.summary_base(results)
        summary["protocol"].update({
            "long_tail": {"profile": self.profile().as_dict(), "stats": asdict(stats),
                          "counts": [int(c) for c in d["counts"]], "groups": list(d["groups"].of_class),
                          "source": "splits/train1.txt" if self.data.is_world else "official split-1 train",
                          "test_per_class": len(d["test"]) // len(d["names"])},
            "test": f"split-1 test, class-balanced ({TEST_SPLIT})",
            "metrics": "acc: mean per-class top-1; head/tail/few: the mean over that group's classes (None: no "
                       "class in the group); Head: the largest classes up to the one crossing 50 % of the samples, "
                       "Few: <= 20 samples (wins over Head), Tail: the rest",
            "ci95": "Student-t over seeds (a run has one training seed: no interval)"})
        return {"task": self.name, "rows": list(rows.values()), "comparisons": self.compare(rows, cells, list(METRICS)),
                "data": summary["data"], "protocol": summary["protocol"]}
