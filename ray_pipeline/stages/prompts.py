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
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.prompts.cache import ResponseCache
from ray_pipeline.prompts.classlists import ClassEntry, get_class_entries, list_label
from ray_pipeline.prompts.messages import Job
from ray_pipeline.prompts.text import compose_template, make_token_counter, truncate_to_tokens, verb_phrase
from ray_pipeline.prompts.writers import PromptWriter, TemplateWriter, get_writer_class, world_phrase
from ray_pipeline.runstore import RunStore

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
# Layout, seeds, identities
# --------------------------------------------------------------------------------------------


def clip_slot(clip_index: int, n_env: int, n_char: int) -> tuple[int, int]:
    """(environment index, character index) of a clip; see the module docstring."""
    c = clip_index % n_char
    return (c + clip_index // n_char) % n_env, c


def clip_seed(class_name: str, clip_index: int, seed: int) -> int:
    """The clip's generation seed, in [0, 2**31): distinct per clip, stable across strategies."""
    payload = json.dumps([class_name, clip_index, seed]).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big") % (2**31)


def _is_world(cfg: ExperimentConfig, entries: list[ClassEntry]) -> bool:
    """Whether the classes are the procedural world's actions (its writer vocabulary applies)."""
    classes = cfg.prompts.classes
    if isinstance(classes, str):
        return classes.strip().lower().startswith("world_")
    if cfg.generate.backend != "procedural":
        return False
    try:
        from ray_pipeline.world.vocabulary import ACTION_BY_NAME
    except ImportError:
        return False
    return all(e.name in ACTION_BY_NAME for e in entries)


def token_limit(cfg: ExperimentConfig) -> int:
    """``prompts.max_prompt_tokens``, lowered to CogVideoX's own text length when it is the backend."""
    limit = cfg.prompts.max_prompt_tokens
    if cfg.generate.backend == "cogvideox":
        limit = min(limit, int(getattr(cfg.generate.cogvideox, "max_sequence_length", limit)))
    return limit


def response_cache(cfg: ExperimentConfig, store: RunStore) -> ResponseCache:
    """Where LLM answers are kept: ``cache_dir/llm_responses`` or ``RUN_DIR/prompts/llm_cache``."""
    if cfg.prompts.response_cache == "run":
        return ResponseCache(store, RUN_CACHE_FOLDER)
    return ResponseCache(RunStore(cfg.resolved_cache_dir()), SHARED_CACHE_FOLDER)


def make_writer(cfg: ExperimentConfig, store: RunStore, entries: list[ClassEntry],
                log: Callable[[str], None] = print) -> PromptWriter:
    """The configured writer (no network until it is asked something)."""
    if cfg.prompts.writer == "template":
        return TemplateWriter(world=_is_world(cfg, entries))
    cls = get_writer_class(cfg.prompts.writer)
    return cls(cfg.prompts.openai, response_cache(cfg, store), store, log)


def _composer_identity(cfg: ExperimentConfig) -> str:
    return f"template/{COMPOSE_VERSION}" if cfg.prompts.composer == "template" else "llm"


def config_key(cfg: ExperimentConfig, writer: PromptWriter) -> str:
    """Hash of everything but clips_per_class that decides a class's rows."""
    use_env, use_char = STRATEGIES[cfg.prompts.strategy]
    return row_id(
        "prompts-config", strategy=cfg.prompts.strategy, writer=writer.identity(),
        composer=_composer_identity(cfg), n_environments=cfg.prompts.n_environments if use_env else 0,
        n_characters=cfg.prompts.n_characters if use_char else 0, token_limit=token_limit(cfg),
        seed=cfg.seed,
    )


def _writer_label(writer: PromptWriter) -> str:
    return json.dumps(writer.identity(), sort_keys=True, separators=(",", ":"))


def prompt_rows(cfg: ExperimentConfig, store: RunStore) -> pa.Table:
    """The current config's prompt rows (classes of the list, clip_index < clips_per_class),
    ordered by class and clip: what the generate stage should render."""
    pcfg = cfg.prompts
    entries = get_class_entries(pcfg.classes, fix_hmdb_swap=pcfg.hmdb_fix_swap)
    table = store.manifest("prompts", "prompt_id").require("prompts (ray-pipeline prompts)")
    key = config_key(cfg, make_writer(cfg, store, entries))
    mask = pc.and_(pc.equal(table.column("config_key"), key),
                   pc.less(table.column("clip_index"), cfg.generate.clips_per_class))
    table = table.filter(mask)
    wanted = {(e.name, e.index) for e in entries}
    keep = [i for i, (n, k) in enumerate(zip(table.column("class_name").to_pylist(),
                                              table.column("class_index").to_pylist()))
            if (n, k) in wanted]
    table = table.take(pa.array(keep, pa.int64()))
    return table.sort_by([("class_index", "ascending"), ("clip_index", "ascending")])


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def run_prompts(cfg: ExperimentConfig, store: RunStore, *, log: Callable[[str], None] = print) -> dict:
    """Write the prompt rows still missing for this config; returns the run's figures.

    Returns:
        rows (this config's rows now present), rows_new, requests, cache_hits, tokens_in,
        tokens_out, est_cost_usd, truncated (among ``rows``), classes, failed_classes, writer,
        token_counter, seconds.

    Raises:
        PromptsStageError: after writing every class that succeeded, if some classes failed.
    """
    start = time.perf_counter()
    pcfg = cfg.prompts
    entries = get_class_entries(pcfg.classes, fix_hmdb_swap=pcfg.hmdb_fix_swap)
    n_clips = cfg.generate.clips_per_class
    use_env, use_char = STRATEGIES[pcfg.strategy]
    world = _is_world(cfg, entries)
    writer = make_writer(cfg, store, entries, log)
    key = config_key(cfg, writer)
    manifest = store.manifest("prompts", "prompt_id")
    store.remove_temporaries("prompts/manifest")
    existing = manifest.read()

    # Slots already written for this config: (class, label id, clip index).
    done: set[tuple[str, int, int]] = set()
    if existing is not None and "config_key" in existing.column_names:
        mine = existing.filter(pc.equal(existing.column("config_key"), key))
        done = set(zip(mine.column("class_name").to_pylist(), mine.column("class_index").to_pylist(),
                       mine.column("clip_index").to_pylist()))
    todo = {e: [i for i in range(n_clips) if (e.name, e.index, i) not in done] for e in entries}
    todo = {e: idx for e, idx in todo.items() if idx}
    n_todo = sum(len(v) for v in todo.values())
    log(f"prompts: {len(entries)} classes ({list_label(pcfg.classes)}), strategy {pcfg.strategy}, "
        f"writer {writer.name}, composer {pcfg.composer}, {n_clips} clips/class; "
        f"{len(entries) * n_clips - n_todo} rows present, {n_todo} to write")

    failed: dict[str, str] = {}
    rows_new = truncated_new = 0
    counter_name = ""
    try:
        if todo:
            rows_new, truncated_new, counter_name = _write_classes(
                cfg, store, writer, key, todo, world, use_env, use_char, failed, log)
    finally:
        writer.close()

    table = manifest.read()
    rows = truncated = 0
    if table is not None:
        mine = table.filter(pc.and_(pc.equal(table.column("config_key"), key),
                                    pc.less(table.column("clip_index"), n_clips)))
        names = {(e.name, e.index) for e in entries}
        flags = [t for n, k, t in zip(mine.column("class_name").to_pylist(),
                                      mine.column("class_index").to_pylist(),
                                      mine.column("truncated").to_pylist()) if (n, k) in names]
        rows, truncated = len(flags), sum(bool(t) for t in flags)
    wstats = writer.stats.as_dict()
    stats: dict[str, Any] = {
        "rows": rows, "rows_new": rows_new, "requests": wstats["requests"],
        "cache_hits": wstats["cache_hits"], "tokens_in": wstats["tokens_in"],
        "tokens_out": wstats["tokens_out"], "est_cost_usd": round(wstats["est_cost_usd"], 6),
        "truncated": truncated, "truncated_new": truncated_new, "classes": len(entries),
        "failed_classes": sorted(failed), "writer": writer.name, "token_counter": counter_name,
        "batches_submitted": wstats["batches_submitted"], "batches_resumed": wstats["batches_resumed"],
        "seconds": round(time.perf_counter() - start, 3),
    }
    log(f"prompts: {rows_new} new rows ({rows} for this config, {truncated} truncated); "
        f"{stats['requests']} LLM requests, {stats['cache_hits']} cache hits, "
        f"{stats['tokens_in']}+{stats['tokens_out']} tokens, ~${stats['est_cost_usd']:.4f}")
    if failed:
        raise PromptsStageError(
            f"prompts: {len(failed)} class(es) failed and have no prompts: "
            + "; ".join(failed[c] for c in sorted(failed))
            + ". The others were written; rerun the stage to retry only the failed ones.", stats)
    return stats


def _first_error(results: list[Any]) -> str | None:
    return next((r.error for r in results if r.error), None)


def _write_classes(cfg: ExperimentConfig, store: RunStore, writer: PromptWriter, key: str,
                   todo: dict[ClassEntry, list[int]], world: bool, use_env: bool, use_char: bool,
                   failed: dict[str, str], log: Callable[[str], None]) -> tuple[int, int, str]:
    """Ask the writer, compose, count tokens and write parts; returns (rows, truncated, counter)."""
    pcfg = cfg.prompts
    # Phase 1: descriptions for every class at once (one thread pool or one batch for all).
    jobs: list[Job] = []
    for e in todo:
        jobs.append(Job("action", e.name, 1))
        if use_env:
            jobs.append(Job("environment", e.name, pcfg.n_environments))
        if use_char:
            jobs.append(Job("character", e.name, pcfg.n_characters))
    parts: dict[tuple[str, str], Any] = {}
    for res in writer.answer(jobs):
        parts[(res.job.class_name, res.job.kind)] = res
    plans: dict[ClassEntry, tuple[str, list[str], list[str]]] = {}
    for e in todo:
        results = [parts[(e.name, k)] for k in ("action", "environment", "character") if (e.name, k) in parts]
        err = _first_error(results)
        if err:
            failed[e.name] = err
            log(f"prompts: FAILED {err}")
            continue
        action = parts[(e.name, "action")].values[0]
        envs = parts[(e.name, "environment")].values if use_env else [""]
        chars = parts[(e.name, "character")].values if use_char else [""]
        plans[e] = (action, envs, chars)

    # Phase 2: one prompt per (environment, character) combination the missing clips use.
    combos: dict[ClassEntry, set[tuple[int, int]]] = {
        e: {clip_slot(i, len(envs), len(chars)) for i in todo[e]} for e, (_, envs, chars) in plans.items()
    }
    composed: dict[tuple[str, int, int], str] = {}
    if pcfg.composer == "llm":
        cjobs, where = [], []
        for e, (action, envs, chars) in plans.items():
            for ei, ci in sorted(combos[e]):
                cjobs.append(Job("compose", e.name, 1, action=action, environment=envs[ei],
                                 character=chars[ci]))
                where.append((e.name, ei, ci))
        for (name, ei, ci), res in zip(where, writer.answer(cjobs)):
            if res.error:
                if name not in failed:
                    failed[name] = res.error
                    log(f"prompts: FAILED {res.error}")
            else:
                composed[(name, ei, ci)] = res.values[0]
    else:
        for e, (action, envs, chars) in plans.items():
            phrase = (world_phrase(e.name) if world else None) or verb_phrase(e.name)
            for ei, ci in combos[e]:
                composed[(e.name, ei, ci)] = compose_template(e.name, action, envs[ei], chars[ci],
                                                              phrase=phrase)

    # Phase 3: rows, token limit, manifest parts.
    counter = make_token_counter(cfg.generate.backend, cfg.generate.cogvideox.model,
                                 cfg.generate.weights_cache, log)
    limit = token_limit(cfg)
    manifest = store.manifest("prompts", "prompt_id")
    ident, composer = _writer_label(writer), _composer_identity(cfg)
    label = list_label(pcfg.classes)
    buffer: list[dict[str, Any]] = []
    n_rows = n_trunc = 0

    def flush() -> None:
        if buffer:
            manifest.write_part(pa.Table.from_pylist(buffer, schema=SCHEMA))
            buffer.clear()

    for e, (action, envs, chars) in plans.items():
        if e.name in failed:
            continue
        fitted: dict[tuple[int, int], tuple[str, int, bool]] = {}
        for ei, ci in combos[e]:
            fitted[(ei, ci)] = truncate_to_tokens(composed[(e.name, ei, ci)], limit, counter.count)
        cut = sum(1 for v in fitted.values() if v[2])
        if cut:
            log(f"prompts: class {e.name!r}: {cut} prompt(s) over {limit} tokens ({counter.name}), truncated")
        for i in todo[e]:
            ei, ci = clip_slot(i, len(envs), len(chars))
            prompt, n_tokens, was_cut = fitted[(ei, ci)]
            seed = clip_seed(e.name, i, cfg.seed)
            pid = row_id("prompt", config=key, class_name=e.name, class_index=e.index,
                         strategy=pcfg.strategy, writer=ident, composer=composer, environment=envs[ei],
                         character=chars[ci], action_description=action, prompt=prompt, seed=seed,
                         clip_index=i)
            buffer.append({
                "prompt_id": pid, "config_key": key, "class_list": label, "class_name": e.name,
                "class_token": e.token, "class_index": e.index, "strategy": pcfg.strategy,
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
