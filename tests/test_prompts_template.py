"""The prompts stage with the offline template writer: layout, nesting, strategies, idempotence."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.prompts import clip_slot
from tests.helpers import prompt_rows, run_prompts


def cfg_for(tmp_path: Path, **prompts) -> ExperimentConfig:
    clips = prompts.pop("clips", 128)
    backend = prompts.pop("backend", "procedural")
    return ExperimentConfig.model_validate({
        "cache_dir": str(tmp_path / "cache"), "prompts": prompts,
        "generate": {"clips_per_class": clips, "backend": backend},
    })


def quiet(_: str) -> None:
    pass


def test_hmdb51_x128_ie_in_seconds(tmp_path):
    cfg = cfg_for(tmp_path, classes="hmdb51", strategy="ie")
    store = RunStore(tmp_path / "run")
    start = time.perf_counter()
    stats = run_prompts(cfg, store, log=quiet)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"HMDB-51 x 128 IE prompts took {elapsed:.1f} s"
    assert stats["rows"] == stats["rows_new"] == 51 * 128 and stats["requests"] == 0

    rows = prompt_rows(cfg, store).to_pylist()
    by_class = defaultdict(list)
    for r in rows:
        by_class[r["class_name"]].append(r)
    assert len(by_class) == 51
    all_envs: set[str] = set()
    for name, rs in by_class.items():
        assert [r["clip_index"] for r in rs] == list(range(128))
        envs = {r["environment"] for r in rs}
        chars = {r["character"] for r in rs}
        assert len(envs) == 4 and len(chars) == 16, name
        assert all(e and c for e, c in zip(envs, chars))
        # Evenly spread: every (environment, character) pair exactly twice, with distinct seeds.
        combos = Counter((r["environment_index"], r["character_index"]) for r in rs)
        assert len(combos) == 64 and set(combos.values()) == {2}
        assert len({r["seed"] for r in rs}) == 128
        assert len({r["prompt"] for r in rs}) == 64
        assert all(r["prompt_tokens"] <= 226 and not r["truncated"] for r in rs)
        all_envs |= envs
    # Environments follow the action: far more distinct places over HMDB than one class has.
    assert len(all_envs) > 60
    assert len({r["prompt_id"] for r in rows}) == len(rows)


def test_rows_are_nested_across_clips_per_class(tmp_path):
    small, big = (cfg_for(tmp_path, classes="ucf101", clips=n) for n in (16, 40))
    a, b, c = (RunStore(tmp_path / name) for name in ("a", "b", "c"))
    run_prompts(small, a, log=quiet)
    run_prompts(big, b, log=quiet)
    rows_small, rows_big = prompt_rows(small, a).to_pylist(), prompt_rows(big, b).to_pylist()
    head = [r for r in rows_big if r["clip_index"] < 16]
    assert rows_small == head
    # Growing a run directory adds exactly the missing clips, identical to a fresh big run.
    run_prompts(small, c, log=quiet)
    stats = run_prompts(big, c, log=quiet)
    assert stats["rows_new"] == 101 * 24
    assert prompt_rows(big, c).to_pylist() == rows_big
    # And the small selection still reads back the same 16 per class.
    assert prompt_rows(small, c).to_pylist() == rows_small


def test_clip_slot_covers_every_combination_first():
    for n_env, n_char in ((4, 16), (3, 5), (1, 16), (4, 1), (1, 1), (6, 4)):
        first = [clip_slot(i, n_env, n_char) for i in range(n_env * n_char)]
        assert len(set(first)) == n_env * n_char


def test_strategies_differ_as_in_table_6(tmp_path):
    store = RunStore(tmp_path / "run")
    distinct = {}
    seeds = {}
    for strategy in ("basic", "env", "cha", "ie"):
        cfg = cfg_for(tmp_path, classes=["brush hair", "ride horse"], strategy=strategy, clips=64)
        stats = run_prompts(cfg, store, log=quiet)
        assert stats["rows_new"] == 128
        rows = prompt_rows(cfg, store).to_pylist()
        hair = [r for r in rows if r["class_name"] == "brush hair"]
        distinct[strategy] = len({r["prompt"] for r in hair})
        seeds[strategy] = [r["seed"] for r in hair]
        if strategy in ("basic", "cha"):
            assert all(r["environment"] == "" and r["environment_index"] == -1 for r in rows)
        if strategy in ("basic", "env"):
            assert all(r["character"] == "" and r["character_index"] == -1 for r in rows)
        assert {r["strategy"] for r in rows} == {strategy}
    assert distinct == {"basic": 1, "env": 4, "cha": 16, "ie": 64}
    # The same clip index gets the same seed under every strategy (a controlled comparison).
    assert seeds["basic"] == seeds["env"] == seeds["cha"] == seeds["ie"]
    # Four configs share one manifest without mixing.
    assert store.manifest("prompts", "prompt_id").read().num_rows == 4 * 128
    basic = prompt_rows(cfg_for(tmp_path, classes=["brush hair", "ride horse"], strategy="basic", clips=64),
                        store).to_pylist()
    assert basic[0]["prompt"].startswith("A person is brushing hair.")


def test_rerun_is_idempotent_and_writes_nothing(tmp_path):
    cfg = cfg_for(tmp_path, classes="ucf_crime", clips=32)
    store = RunStore(tmp_path / "run")
    run_prompts(cfg, store, log=quiet)
    parts = store.manifest("prompts", "prompt_id").parts()
    stats = run_prompts(cfg, store, log=quiet)
    assert stats["rows_new"] == 0 and stats["rows"] == 14 * 32
    assert store.manifest("prompts", "prompt_id").parts() == parts
    names = {r["class_name"] for r in prompt_rows(cfg, store).to_pylist()}
    assert "Road Accidents" in names and "Normal" in names


def test_seed_changes_seeds_and_ids_only(tmp_path):
    a = cfg_for(tmp_path, classes=["wave"], clips=8)
    b = a.model_copy(update={"seed": 1})
    store = RunStore(tmp_path / "run")
    run_prompts(a, store, log=quiet)
    run_prompts(b, store, log=quiet)
    ra, rb = prompt_rows(a, store).to_pylist(), prompt_rows(b, store).to_pylist()
    assert [r["prompt"] for r in ra] == [r["prompt"] for r in rb]
    assert all(x["seed"] != y["seed"] and x["prompt_id"] != y["prompt_id"] for x, y in zip(ra, rb))


def test_hmdb_swap_flag_changes_class_indices(tmp_path):
    plain = cfg_for(tmp_path, classes="hmdb51", clips=1)
    fixed = cfg_for(tmp_path, classes="hmdb51", clips=1, hmdb_fix_swap=True)
    store = RunStore(tmp_path / "run")
    run_prompts(plain, store, log=quiet)
    run_prompts(fixed, store, log=quiet)
    idx_plain = {r["class_name"]: r["class_index"] for r in prompt_rows(plain, store).to_pylist()}
    idx_fixed = {r["class_name"]: r["class_index"] for r in prompt_rows(fixed, store).to_pylist()}
    assert (idx_plain["kick ball"], idx_plain["kick"], idx_plain["sword exercise"]) == (20, 21, 44)
    assert (idx_fixed["kick ball"], idx_fixed["kick"], idx_fixed["sword exercise"]) == (21, 20, 45)
    assert len(prompt_rows(fixed, store)) == 51


def test_long_prompts_are_truncated_and_flagged(tmp_path):
    cfg = cfg_for(tmp_path, classes=["brush hair", "wave"], clips=16, max_prompt_tokens=30)
    logs: list[str] = []
    stats = run_prompts(cfg, RunStore(tmp_path / "run"), log=logs.append)
    rows = prompt_rows(cfg, RunStore(tmp_path / "run")).to_pylist()
    assert stats["truncated"] == 32 == stats["truncated_new"]
    assert all(r["truncated"] and r["prompt_tokens"] <= 30 and r["token_counter"] == "estimate" for r in rows)
    assert any("truncated" in line and "brush hair" in line for line in logs)


def test_world_classes_use_the_world_vocabulary(tmp_path):
    vocab = pytest.importorskip("ray_pipeline.world.vocabulary")
    cfg = cfg_for(tmp_path, classes="world_hmdb", clips=64)
    store = RunStore(tmp_path / "run")
    run_prompts(cfg, store, log=quiet)
    rows = prompt_rows(cfg, store).to_pylist()
    assert {r["class_name"] for r in rows} == set(vocab.WORLD_CLASS_LISTS["world_hmdb"])
    env_texts = {e.description: e.name for e in vocab.ENVIRONMENTS}
    look_texts = {c.description: c.name for c in vocab.CHARACTERS}
    for name in ("brush hair", "sit up", "kick ball"):
        rs = [r for r in rows if r["class_name"] == name]
        action = vocab.ACTION_BY_NAME[name]
        assert {env_texts[r["environment"]] for r in rs} == set(action.typical_envs)
        assert len({look_texts[r["character"]] for r in rs}) == 16
        assert all(action.gerund in r["prompt"] for r in rs)
    parse = pytest.importorskip("ray_pipeline.world.parse")
    # The world's generator must understand every prompt the writer gives it.
    for r in rows[::7]:
        got = parse.parse_prompt(r["prompt"])
        assert got.action == r["class_name"], r["prompt"]
        assert got.environment == env_texts[r["environment"]], r["prompt"]
        assert got.character == look_texts[r["character"]], r["prompt"]
