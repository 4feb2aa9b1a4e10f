"""Base-to-novel generalisation (the paper's Table 3, ViFi-CLIP's benchmark).

The classes are split into a base and a novel half. For each seed s in ``base_to_novel.seeds``
(published: 1, 2, 3) the model is fine-tuned on that seed's 16-shot base list
(``fs_base_s<s>_train.txt``) with the base names as its text classifier, and the same checkpoint is
tested on the base half of split-1 test against the base names only and on the novel half
against the novel names only. Rows as in :mod:`ray_pipeline.tasks.finetune` (``backbone``,
``baseline``, ``generated``); the generated pre-training sees every class's generated clips (the
paper generates each dataset's categories), or the base classes' only with ``generated_classes:
base``. Under the ``best`` epoch rule the epoch is chosen on base accuracy and novel accuracy is
that checkpoint's (TC-CLIP's procedure).

``summary.json``: ``datasets.<name>.base`` and ``.novel`` over the seeds (mean, population std,
Student-t CI over seeds), and ``.hm``: HM = 2·B̄·N̄/(B̄+N̄) of the seed means, with a percentile
bootstrap CI over seeds (``evaluation/base_to_novel.py``). Comparisons pair the seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ray_pipeline.evaluation.base_to_novel import (
    BaseToNovelData,
    aggregate_seeds,
    half_label_swaps,
    harmonic_mean,
    paired_hm_difference,
    published_base_to_novel_files,
    read_base_to_novel,
    world_base_to_novel_files,
)
from ray_pipeline.evaluation.datasets import HMDB_SWAPS, Split
from ray_pipeline.stages.base import Inputs
from ray_pipeline.tasks.finetune import ROLES, FinetuneTask, ModelOutcome, metric_entry
from ray_pipeline.training.records import TrainingRecords

BASE_SPLIT, NOVEL_SPLIT = "base_val", "novel_val"


class BaseToNovelTask(FinetuneTask):
    name = "base_to_novel"
    section_name = "base_to_novel"
    selection_metric = "base accuracy"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._lists: dict[int, BaseToNovelData] | None = None

    def list_keys(self) -> list[str]:
        return [f"s{s}" for s in self.cfg.base_to_novel.seeds]

    def key_label(self, key: str) -> str:
        return f"base seed {key[1:]}"

    def lists(self) -> dict[int, BaseToNovelData]:
        """Each seed's lists, read and checked (shots per base class, base and novel disjoint)."""
        if self._lists is None:
            folder = self.roots()[0]
            files = (world_base_to_novel_files(folder) if self.data.is_world
                     else published_base_to_novel_files(folder, self.data.dataset))
            b = self.cfg.base_to_novel
            self._lists = {s: read_base_to_novel(files, s, b.shots) for s in b.seeds}
        return self._lists

    def halves(self) -> Any:
        return next(iter(self.lists().values())).halves

    def swaps(self) -> dict[str, dict[int, int]]:
        """HMDB-51's label fix in each half's own ids (none unless ``data.label_fix`` asks)."""
        if self.data.label_fix == "none":
            return {"base": {}, "novel": {}}
        return half_label_swaps(self.halves(), HMDB_SWAPS)

    def training_lists(self) -> dict[str, TrainingRecords]:
        swaps = self.swaps()["base"]
        return {f"s{s}": self.records(list(d.halves.base), d.train, swaps) for s, d in self.lists().items()}

    def test_splits(self) -> list[tuple[str, Split]]:
        d, swaps = next(iter(self.lists().values())), self.swaps()
        return [(self.data.name, self.split(BASE_SPLIT, list(d.halves.base), d.base_val, swaps["base"])),
                (self.data.name, self.split(NOVEL_SPLIT, list(d.halves.novel), d.novel_val, swaps["novel"]))]

    def generated_classes(self) -> tuple[str, ...] | None:
        return tuple(self.halves().base) if self.cfg.base_to_novel.generated_classes == "base" else None

    def selection_value(self, model: ModelOutcome) -> float:
        return model.splits[BASE_SPLIT].top1()

    def summarize(self, results: Inputs) -> dict[str, Any]:
        b = self.cfg.base_to_novel
        reported = self.reported(self.outcomes(results))
        ds = self.data.name
        rows: dict[str, dict[str, Any]] = {}
        cells: dict[tuple[str, str], dict] = {}
        accuracies: dict[str, tuple[dict[int, float], dict[int, float]]] = {}
        for role in ROLES:
            # The backbone is not trained: one evaluation stands for every seed (n = 1).
            seeds = [0] if role == "backbone" else [s for s in b.seeds if (role, f"s{s}") in reported]
            if not seeds:
                continue
            base, novel, epochs = {}, {}, {}
            for s in seeds:
                rep = reported[(role, None if role == "backbone" else f"s{s}")]
                base[s] = rep.model.splits[BASE_SPLIT].top1()
                novel[s] = rep.model.splits[NOVEL_SPLIT].top1()
                if rep.choice is not None:
                    epochs[s] = self.epoch_fields(rep)
            accuracies[role] = (base, novel)
            cells[(role, "base")] = {(s, BASE_SPLIT): v for s, v in base.items()}
            cells[(role, "novel")] = {(s, NOVEL_SPLIT): v for s, v in novel.items()}
            agg = aggregate_seeds(base, novel, n_boot=b.n_boot, boot_seed=self.cfg.train.seed)
            per_seed = {s: harmonic_mean(base[s], novel[s]) for s in seeds}
            hm = {"mean": agg.hm, "std": float(np.std(list(per_seed.values()))),
                  "ci95": list(agg.hm_ci95) if agg.hm_ci95 else None, "n": len(seeds),
                  "ci_over": "bootstrap over base seeds" if agg.hm_ci95 else None, "n_boot": agg.n_boot,
                  "per_seed": {str(s): v for s, v in per_seed.items()},
                  "of": "the seed means of base and novel accuracy"}
            entry: dict[str, Any] = {"base": metric_entry(cells[(role, "base")]),
                                     "novel": metric_entry(cells[(role, "novel")]), "hm": hm}
            if epochs:
                entry["epochs"] = {str(s): e for s, e in epochs.items()}
            rows[role] = {"label": self.row_label(role), "role": role, "seeds": self.seeds(role),
                          "base_seeds": [] if role == "backbone" else seeds, "datasets": {ds: entry}}
        comparisons = self.compare(rows, cells, ["base", "novel"])
        if "generated" in accuracies and "baseline" in accuracies:
            comparisons.append({"a": rows["generated"]["label"], "b": rows["baseline"]["label"], "metric": "hm",
                                "dataset": ds, **paired_hm_difference(accuracies["generated"], accuracies["baseline"],
                                                                      n_boot=b.n_boot, boot_seed=self.cfg.train.seed)})
        summary = self.summary_base(results)
        halves = self.halves()
        summary["protocol"].update({
            "seeds": list(b.seeds), "shots": b.shots, "base_classes": len(halves.base),
            "novel_classes": len(halves.novel), "generated_classes": b.generated_classes,
            "test": "base half of split-1 test against base names only, novel half against novel names only, "
                    "same checkpoint",
            "hm": "2·B̄·N̄/(B̄+N̄) of the seed means; CI: percentile bootstrap over base seeds; std: of the "
                  "per-seed HMs",
            "ci95": "Student-t over base seeds (base, novel)"})
        return {"task": self.name, "rows": list(rows.values()), "comparisons": comparisons,
                "data": summary["data"], "protocol": summary["protocol"]}
