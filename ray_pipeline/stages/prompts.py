"""Prompts stage: class names -> one text-to-video prompt per clip to generate.

Per class the writer produces an action description (paper eq. 1) and, as the strategy asks,
``n_environments`` environment and ``n_characters`` character descriptions (eq. 2); the composer
(template, or the LLM) turns each (action, environment, character) into the final prompt, which is
kept within the text encoder's token limit.

Strategies: ``basic`` (action only), ``env`` (+ environments), ``cha`` (+ characters), ``ie``
(both), as in the paper's Table 6.

Clip layout, nested by construction: clip ``i`` of a class uses character ``i mod C`` and
environment ``(i mod C + i div C) mod E`` and seed ``hash(class, i, cfg.seed)``, so the first
``C*E`` clips cover every combination once, 128 clips cover the 64 IE combinations twice each, and
the rows of clips ``i < n`` are the same whatever ``clips_per_class`` is: a clips-per-class sweep
draws nested subsets of one pool.

Manifest ``prompts/manifest`` (id ``prompt_id``), one row per clip: ``prompt_id, config_key,
class_list, class_name, class_token, class_index, strategy, environment, environment_index,
character, character_index, action_description, prompt, seed, clip_index, writer, composer,
prompt_tokens, token_counter, truncated``. ``config_key`` identifies everything but
``clips_per_class`` that decides the rows; :func:`prompt_rows` selects the current config's rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ray_pipeline.config import ExperimentConfig, PromptsConfig
from ray_pipeline.ids import row_id
from ray_pipeline.prompts.cache import ResponseCache
from ray_pipeline.prompts.classlists import ClassEntry, list_label
from ray_pipeline.prompts.messages import Job
from ray_pipeline.prompts.text import compose_template, make_token_counter, truncate_to_tokens, verb_phrase
from ray_pipeline.prompts.writers import PromptWriter, get_writer_class
from ray_pipeline.prompts.writers.template import world_phrase
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.base import Inputs, Stage, StageContext, StageResult

# (uses environments, uses characters) per strategy.
STRATEGIES: dict[str, tuple[bool, bool]] = {
    "basic": (False, False), "env": (True, False), "cha": (False, True), "ie": (True, True),
}
# Bump when the template composition changes (it is part of every prompt id).
COMPOSE_VERSION = "c1"
SHARED_CACHE_FOLDER = "llm_responses"
RUN_CACHE_FOLDER = "prompts/llm_cache"
# Rows buffered before a manifest part is written.
PART_ROWS = 4096

SCHEMA = pa.schema([
    ("prompt_id", pa.string()), ("config_key", pa.string()), ("class_list", pa.string()),
    ("class_name", pa.string()), ("class_token", pa.string()), ("class_index", pa.int64()),
    ("strategy", pa.string()), ("environment", pa.string()), ("environment_index", pa.int64()),
    ("character", pa.string()), ("character_index", pa.int64()), ("action_description", pa.string()),
    ("prompt", pa.string()), ("seed", pa.int64()), ("clip_index", pa.int64()), ("writer", pa.string()),
    ("composer", pa.string()), ("prompt_tokens", pa.int64()), ("token_counter", pa.string()),
    ("truncated", pa.bool_()),
])


class PromptsStageError(RuntimeError):
    """Some classes got no prompts (their rows are missing); ``stats`` says what the run did."""

    def __init__(self, message: str, stats: dict[str, Any]) -> None:
        super().__init__(message)
        self.stats = stats



# --------------------------------------------------------------------------------------------
# Layout and seeds
# --------------------------------------------------------------------------------------------


def clip_slot(clip_index: int, n_env: int, n_char: int) -> tuple[int, int]:
    """(environment index, character index) of a clip; see the module docstring."""
    c = clip_index % n_char
    return (c + clip_index // n_char) % n_env, c


def clip_seed(class_name: str, clip_index: int, seed: int) -> int:
    """The clip's generation seed, in [0, 2**31): distinct per clip, stable across strategies."""
    payload = json.dumps([class_name, clip_index, seed]).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big") % (2**31)


def is_world_classes(cfg: ExperimentConfig, entries: list[ClassEntry]) -> bool:
    """Whether the classes are the procedural world's actions (its writer vocabulary applies)."""
    classes = cfg.prompts.classes
    if isinstance(classes, str):
        return classes.strip().lower().startswith("world_")
    if cfg.generate.backend != "procedural":
        return False
    from ray_pipeline.world.vocabulary import ACTION_BY_NAME

    return all(e.name in ACTION_BY_NAME for e in entries)


def token_limit(cfg: ExperimentConfig) -> int:
    """``prompts.max_prompt_tokens``, lowered to the backend text encoder's own length (CogVideoX 226,
    Wan 512, LTX 128 by default)."""
    limit = cfg.prompts.max_prompt_tokens
    backend = cfg.generate.backend_config()
    if hasattr(backend, "max_sequence_length"):
        limit = min(limit, backend.max_sequence_length)
    return limit


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass
class PromptsStage(Stage):
    """Class names -> one prompt row per clip (see the module docstring).

    Attributes:
        settings: the ``prompts`` section.
        classes: the class list (names and label ids; HMDB's swap already applied).
        clips_per_class: rows per class handed on (a prefix of the nested layout).
        seed: the experiment seed (clip seeds derive from it).
        world: whether the classes are the procedural world's actions.
        token_limit: the generator's prompt-token limit.
        token_counter: (backend, text-encoder model, weights cache) for counting tokens.
        cache_dir: where the shared LLM response cache lives.
    """

    name = "prompts"
    data_stage = True

    settings: PromptsConfig
    classes: list[ClassEntry]
    clips_per_class: int
    seed: int
    world: bool
    token_limit: int
    token_counter: tuple[str, str | None, str | None]
    cache_dir: str

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, classes: list[ClassEntry]) -> PromptsStage:
        g = cfg.generate
        text_model = getattr(g.backend_config(), "model", None)  # its tokenizer counts the tokens
        return cls(cfg.prompts, classes, g.clips_per_class, cfg.seed, is_world_classes(cfg, classes),
                   token_limit(cfg), (g.backend, text_model, g.weights_cache), str(cfg.resolved_cache_dir()))

    # ---------------------------------------------------------------- identity
    @property
    def uses(self) -> tuple[bool, bool]:
        """(uses environments, uses characters) of the strategy."""
        return STRATEGIES[self.settings.strategy]

    def writer_identity(self) -> dict[str, Any]:
        cls = get_writer_class(self.settings.writer)
        return cls.identity_of(self.world if self.settings.writer == "template" else self.settings.openai)

    def composer_identity(self) -> str:
        return f"template/{COMPOSE_VERSION}" if self.settings.composer == "template" else "llm"

    def config_key(self) -> str:
        """Hash of everything but clips_per_class that decides a class's rows."""
        use_env, use_char = self.uses
        p = self.settings
        return row_id(
            "prompts-config", strategy=p.strategy, writer=self.writer_identity(),
            composer=self.composer_identity(), n_environments=p.n_environments if use_env else 0,
            n_characters=p.n_characters if use_char else 0, token_limit=self.token_limit, seed=self.seed,
        )

    def identity(self) -> dict[str, Any]:
        return {"config_key": self.config_key(), "classes": [(e.name, e.index) for e in self.classes],
                "clips_per_class": self.clips_per_class}

    def describe(self) -> str:
        p = self.settings
        return (f"{len(self.classes)} classes ({list_label(p.classes)}), strategy {p.strategy}, writer {p.writer}, "
                f"composer {p.composer}, {self.clips_per_class} clips/class")

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        text = f"{s.get('rows', 0)} rows ({s.get('rows_new', 0)} new, {s.get('truncated', 0)} truncated)"
        if self.settings.writer != "template":
            text += (f"; {s.get('requests', 0)} LLM requests, {s.get('cache_hits', 0)} cache hits, "
                     f"~${s.get('est_cost_usd', 0.0):.4f}")
        return text

    # ---------------------------------------------------------------- rows
    def response_cache(self, store: RunStore) -> ResponseCache:
        """Where LLM answers are kept: ``cache_dir/llm_responses`` or ``RUN_DIR/prompts/llm_cache``."""
        if self.settings.response_cache == "run":
            return ResponseCache(store, RUN_CACHE_FOLDER)
        return ResponseCache(RunStore(self.cache_dir), SHARED_CACHE_FOLDER)

    def make_writer(self, store: RunStore, log: Callable[[str], None]) -> PromptWriter:
        """The configured writer (no network until it is asked something)."""
        cls = get_writer_class(self.settings.writer)
        if self.settings.writer == "template":
            return cls(world=self.world)
        return cls(self.settings.openai, self.response_cache(store), store, log)

    def mine(self, table: pa.Table | None) -> pa.Table:
        """This config's rows of a prompts manifest, ordered by class and clip."""
        if table is None or "config_key" not in table.column_names:
            return pa.Table.from_pylist([], schema=SCHEMA)
        table = table.filter(pc.and_(pc.equal(table.column("config_key"), self.config_key()),
                                     pc.less(table.column("clip_index"), self.clips_per_class)))
        wanted = {(e.name, e.index) for e in self.classes}
        keep = [i for i, (n, k) in enumerate(zip(table.column("class_name").to_pylist(),
                                                  table.column("class_index").to_pylist())) if (n, k) in wanted]
        table = table.take(pa.array(keep, pa.int64()))
        return table.sort_by([("class_index", "ascending"), ("clip_index", "ascending")])

    def _result(self, store: RunStore, stats: dict[str, Any]) -> StageResult:
        rows = self.mine(store.manifest("prompts", "prompt_id").read())
        truncated = sum(bool(t) for t in rows.column("truncated").to_pylist())
        return StageResult(rows, {**stats, "rows": rows.num_rows, "truncated": truncated,
                                  "classes": len(self.classes)})

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._result(ctx.store, {})

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """Write the prompt rows still missing for this config.

        Raises:
            PromptsStageError: after writing every class that succeeded, if some classes failed.
        """
        start = time.perf_counter()
        log = ctx.console.logger(self.name)
        manifest = ctx.store.manifest("prompts", "prompt_id")
        ctx.store.remove_temporaries("prompts/manifest")
        done = {(r["class_name"], r["class_index"], r["clip_index"])
                for r in self.mine_all(manifest.read()).select(["class_name", "class_index", "clip_index"])
                .to_pylist()}
        todo = {e: [i for i in range(self.clips_per_class) if (e.name, e.index, i) not in done] for e in self.classes}
        todo = {e: idx for e, idx in todo.items() if idx}
        writer = self.make_writer(ctx.store, log)
        failed: dict[str, str] = {}
        rows_new = truncated_new = 0
        counter_name = ""
        try:
            if todo:
                rows_new, truncated_new, counter_name = self._write_classes(ctx.store, writer, todo, failed, log)
        finally:
            writer.close()
        w = writer.stats.as_dict()
        stats: dict[str, Any] = {
            "rows_new": rows_new, "truncated_new": truncated_new, "requests": w["requests"],
            "cache_hits": w["cache_hits"], "tokens_in": w["tokens_in"], "tokens_out": w["tokens_out"],
            "est_cost_usd": round(w["est_cost_usd"], 6), "failed_classes": sorted(failed),
            "writer": writer.name, "token_counter": counter_name, "batches_submitted": w["batches_submitted"],
            "batches_resumed": w["batches_resumed"], "seconds": round(time.perf_counter() - start, 3),
        }
        result = self._result(ctx.store, stats)
        if failed:
            raise PromptsStageError(
                f"{len(failed)} class(es) failed and have no prompts: "
                + "; ".join(failed[c] for c in sorted(failed))
                + ". The others were written; rerun the stage to retry only the failed ones.", result.stats)
        return result

    def mine_all(self, table: pa.Table | None) -> pa.Table:
        """This config's rows of any clip index (what is already written)."""
        if table is None or "config_key" not in table.column_names:
            return pa.Table.from_pylist([], schema=SCHEMA)
        return table.filter(pc.equal(table.column("config_key"), self.config_key()))

    def _write_classes(self, store: RunStore, writer: PromptWriter, todo: dict[ClassEntry, list[int]],
                       failed: dict[str, str], log: Callable[[str], None]) -> tuple[int, int, str]:
        """Ask the writer, compose, count tokens and write parts; returns (rows, truncated, counter)."""
        p = self.settings
        use_env, use_char = self.uses
        # Phase 1: descriptions for every class at once (one thread pool or one batch for all).
        jobs: list[Job] = []
        for e in todo:
            jobs.append(Job("action", e.name, 1))
            if use_env:
                jobs.append(Job("environment", e.name, p.n_environments))
            if use_char:
                jobs.append(Job("character", e.name, p.n_characters))
        parts = {(res.job.class_name, res.job.kind): res for res in writer.answer(jobs)}
        plans: dict[ClassEntry, tuple[str, list[str], list[str]]] = {}
        for e in todo:
            results = [parts[(e.name, k)] for k in ("action", "environment", "character") if (e.name, k) in parts]
            err = next((r.error for r in results if r.error), None)
            if err:
                failed[e.name] = err
                log(f"FAILED {err}")
                continue
            action = parts[(e.name, "action")].values[0]
            envs = parts[(e.name, "environment")].values if use_env else [""]
            chars = parts[(e.name, "character")].values if use_char else [""]
            plans[e] = (action, envs, chars)

        # Phase 2: one prompt per (environment, character) combination the missing clips use.
        combos = {e: {clip_slot(i, len(envs), len(chars)) for i in todo[e]} for e, (_, envs, chars) in plans.items()}
        composed: dict[tuple[str, int, int], str] = {}
        if p.composer == "llm":
            cjobs, where = [], []
            for e, (action, envs, chars) in plans.items():
                for ei, ci in sorted(combos[e]):
                    cjobs.append(Job("compose", e.name, 1, action=action, environment=envs[ei], character=chars[ci]))
                    where.append((e.name, ei, ci))
            for (name, ei, ci), res in zip(where, writer.answer(cjobs)):
                if res.error:
                    if name not in failed:
                        failed[name] = res.error
                        log(f"FAILED {res.error}")
                else:
                    composed[(name, ei, ci)] = res.values[0]
        else:
            for e, (action, envs, chars) in plans.items():
                phrase = (world_phrase(e.name) if self.world else None) or verb_phrase(e.name)
                for ei, ci in combos[e]:
                    composed[(e.name, ei, ci)] = compose_template(e.name, action, envs[ei], chars[ci], phrase=phrase)

        # Phase 3: rows, token limit, manifest parts.
        backend, model, weights_cache = self.token_counter
        counter = make_token_counter(backend, model, weights_cache, log)
        manifest = store.manifest("prompts", "prompt_id")
        key, ident = self.config_key(), json.dumps(writer.identity(), sort_keys=True, separators=(",", ":"))
        composer, label = self.composer_identity(), list_label(p.classes)
        buffer: list[dict[str, Any]] = []
        n_rows = n_trunc = 0

        def flush() -> None:
            if buffer:
                manifest.write_part(pa.Table.from_pylist(buffer, schema=SCHEMA))
                buffer.clear()

        for e, (action, envs, chars) in plans.items():
            if e.name in failed:
                continue
            fitted = {slot: truncate_to_tokens(composed[(e.name, *slot)], self.token_limit, counter.count)
                      for slot in combos[e]}
            cut = sum(1 for v in fitted.values() if v[2])
            if cut:
                log(f"class {e.name!r}: {cut} prompt(s) over {self.token_limit} tokens ({counter.name}), truncated")
            for i in todo[e]:
                ei, ci = clip_slot(i, len(envs), len(chars))
                prompt, n_tokens, was_cut = fitted[(ei, ci)]
                seed = clip_seed(e.name, i, self.seed)
                pid = row_id("prompt", config=key, class_name=e.name, class_index=e.index,
                             strategy=p.strategy, writer=ident, composer=composer, environment=envs[ei],
                             character=chars[ci], action_description=action, prompt=prompt, seed=seed,
                             clip_index=i)
                buffer.append({
                    "prompt_id": pid, "config_key": key, "class_list": label, "class_name": e.name,
                    "class_token": e.token, "class_index": e.index, "strategy": p.strategy,
                    "environment": envs[ei], "environment_index": ei if envs[ei] else -1,
                    "character": chars[ci], "character_index": ci if chars[ci] else -1,
                    "action_description": action, "prompt": prompt, "seed": seed, "clip_index": i,
                    "writer": ident, "composer": composer, "prompt_tokens": n_tokens,
                    "token_counter": counter.name, "truncated": was_cut,
                })
                n_rows += 1
                n_trunc += int(was_cut)
            if len(buffer) >= PART_ROWS:
                flush()
        flush()
        return n_rows, n_trunc, counter.name
