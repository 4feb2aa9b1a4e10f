"""Verb phrases, composition, token counting/truncation, message validation, the template lexicon."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from ray_pipeline.config import ConfigError, ExperimentConfig, load_config
from ray_pipeline.prompts.messages import (
    AnswerError,
    Job,
    json_schema,
    messages,
    parse_answer,
    response_format,
)
from ray_pipeline.prompts.text import (
    EstimateCounter,
    compose_template,
    estimate_t5_tokens,
    ing,
    make_token_counter,
    truncate_to_tokens,
    verb_phrase,
)
from ray_pipeline.prompts.writers.template import (
    TemplateWriter,
    match_scenes,
    template_characters,
    template_environments,
)
from ray_pipeline.runstore import RunStore
from tests.helpers import prompt_rows, run_prompts

DOCS = Path(__file__).resolve().parents[1] / "docs" / "prompts.md"


@pytest.mark.parametrize("name,phrase", [
    ("brush hair", "brushing hair"), ("ride bike", "riding a bike"), ("hit", "hitting"), ("run", "running"),
    ("playing guitar", "playing guitar"), ("Apply Eye Makeup", "applying eye makeup"),
    ("pushup", "doing push-ups"), ("push up", "doing push-ups"), ("Push Ups", "doing push-ups"),
    ("sword", "sword fighting"), ("Archery", "doing archery"), ("climb stairs", "climbing stairs"),
    ("arm wrestling", "arm wrestling"), ("Swing", "swinging on a swing"),
])
def test_verb_phrases(name, phrase):
    assert verb_phrase(name) == phrase


def test_ing_rules():
    assert [ing(v) for v in ("tie", "dive", "swim", "see", "kick", "ski")] == \
        ["tying", "diving", "swimming", "seeing", "kicking", "skiing"]


def test_compose_template_forms():
    assert compose_template("wave", "One arm swings.", "in a park", "a tall man") == \
        "A tall man is waving in a park. One arm swings."
    assert compose_template("wave", "One arm swings") == "A person is waving. One arm swings."
    # An environment that is a sentence, not a location phrase, stays grammatical.
    assert compose_template("wave", "Arm up.", "A sunny beach with palms.") == \
        "A person is waving. The scene: a sunny beach with palms. Arm up."
    assert compose_template("sit up", "Curl.", phrase="doing sit ups") == "A person is doing sit ups. Curl."


def test_estimate_is_conservative_on_plain_words():
    assert estimate_t5_tokens("") == 1  # </s>
    assert estimate_t5_tokens("a man runs") == 4
    assert estimate_t5_tokens("brushing, 2024!") == 1 + 2 + 1 + 4 + 1
    text = "A tall man is brushing his hair in a sunlit bathroom with white tiles and a large mirror."
    assert estimate_t5_tokens(text) >= len(text.split()) + 2


def test_truncation_respects_the_limit_and_prefers_sentence_ends():
    count = EstimateCounter().count
    text = "One two three. " * 30
    cut, n, flag = truncate_to_tokens(text.strip(), 20, count)
    assert flag and n <= 20 and cut.endswith(".") and cut == cut.strip()
    same, n2, flag2 = truncate_to_tokens("short prompt", 20, count)
    assert (same, flag2) == ("short prompt", False) and n2 == count("short prompt")
    words = " ".join(["word"] * 100)
    cut, n, flag = truncate_to_tokens(words, 10, count)
    assert flag and n == 10 and cut == " ".join(["word"] * 9)


def _save_tiny_t5(model_dir: Path) -> None:
    from transformers import T5Tokenizer

    words = "a person is brushing hair in park man woman the with and tall".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -3.0 - i * 0.01) for i, w in enumerate(words)]
    vocab += [(ch, -10.0) for ch in string.ascii_lowercase + string.digits + ".,"]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(model_dir / "tokenizer")


def test_cogvideox_tokenizer_is_used_when_on_disk(tmp_path):
    model = tmp_path / "cogvideox"
    _save_tiny_t5(model)
    logs: list[str] = []
    counter = make_token_counter("cogvideox", str(model), None, logs.append)
    assert counter.name.startswith("tokenizer:") and not logs
    assert counter.count("a person is brushing hair") == 6  # 5 words + </s>
    assert counter.count("zq") == 4  # unknown word: "▁", "z", "q", </s>

    cfg = ExperimentConfig.model_validate({
        "cache_dir": str(tmp_path / "c"), "prompts": {"classes": ["brush hair"], "max_prompt_tokens": 40},
        "generate": {"backend": "cogvideox", "clips_per_class": 4, "cogvideox": {"model": str(model)}},
    })
    store = RunStore(tmp_path / "run")
    stats = run_prompts(cfg, store, log=lambda s: None)
    rows = prompt_rows(cfg, store).to_pylist()
    assert stats["token_counter"] == counter.name and stats["truncated"] == 4
    for r in rows:
        assert r["token_counter"] == counter.name and r["prompt_tokens"] == counter.count(r["prompt"]) <= 40


def test_missing_tokenizer_falls_back_loudly(tmp_path):
    logs: list[str] = []
    counter = make_token_counter("cogvideox", str(tmp_path / "absent"), None, logs.append)
    assert counter.name == "estimate" and "conservative estimate" in logs[0]
    assert make_token_counter("procedural", "x", None, logs.append).name == "estimate"


@pytest.mark.parametrize("content,error", [
    (None, "empty"), ("", "empty"), ('{"environments": ["a", ', "malformed JSON"),
    ('["a", "b"]', "JSON object"), ('{"places": ["a", "b"]}', "JSON object"),
    ('{"environments": "in a gym"}', "list of strings"), ('{"environments": ["a", 3]}', "list of strings"),
    ('{"environments": ["in a gym", " "]}', "empty description"),
    ('{"environments": ["in a gym"]}', "exactly 2"), ('{"environments": ["a", "b", "c"]}', "exactly 2"),
    ('{"environments": ["In a gym.", "in a  gym"]}', "not distinct"),
])
def test_parse_answer_rejects(content, error):
    with pytest.raises(AnswerError, match=error):
        parse_answer(Job("environment", "wave", 2), content)


def test_parse_answer_accepts_and_normalises():
    job = Job("character", "wave", 2)
    assert parse_answer(job, '{"characters": [" a tall  man ", "a child"]}') == ["a tall man", "a child"]
    assert parse_answer(job, '```json\n{"characters": ["x", "y"]}\n```') == ["x", "y"]
    assert parse_answer(Job("compose", "wave"), '{"prompt": " A  prompt. "}') == ["A prompt."]
    with pytest.raises(AnswerError):
        parse_answer(Job("compose", "wave"), '{"prompt": ""}')


def test_schema_and_response_formats():
    job = Job("environment", "wave", 4)
    schema = json_schema(job)
    assert schema["required"] == ["environments"] and schema["additionalProperties"] is False
    envs = schema["properties"]["environments"]
    assert envs["minItems"] == 4 == envs["maxItems"]
    assert response_format(job, "json_schema")["json_schema"]["strict"] is True
    assert response_format(job, "json_object") == {"type": "json_object"}
    assert response_format(job, "none") is None
    user = messages(job)[1]["content"]
    assert user.startswith("Given a phrase describing an action, generate 4 different scene appearance")
    compose = messages(Job("compose", "wave", action="Arm up.", environment="in a park", character="a man"))
    assert 'showing a man performing the action "wave", in a park.' in compose[1]["content"]


def test_docs_show_the_messages_in_use():
    """docs/prompts.md quotes the system and user messages verbatim."""
    from ray_pipeline.prompts import messages as m

    doc = DOCS.read_text()
    for text in (m.SYSTEM_MESSAGE, m.ACTION_MESSAGE, m.ENVIRONMENT_MESSAGE, m.CHARACTER_MESSAGE,
                 m.COMPOSE_MESSAGE):
        for line in text.splitlines():
            assert line.replace("{{", "{").replace("}}", "}") in doc, line


def test_template_lexicon_is_plausible_and_deterministic():
    assert match_scenes("Breast Stroke")[0].name == "water"
    assert match_scenes("golf")[0].name == "golf"
    assert match_scenes("kick ball")[0].name == "football"
    assert match_scenes("brush hair")[0].name == "grooming"
    assert match_scenes("Baby Crawling")[0].name == "baby"
    assert match_scenes("zzz")[0].name == "generic"
    assert any("golf" in e for e in template_environments("golf", 4))
    chars = template_characters("Baby Crawling", 16)
    assert len(set(chars)) == 16 and all("bab" in c or "toddler" in c for c in chars)
    assert template_characters("wave", 16) == template_characters("wave", 16)
    assert len(set(template_environments("wave", 30))) == 30  # beyond the lexicon: light variants
    assert len(set(template_characters("wave", 40))) == 40
    w = TemplateWriter()
    res = w.answer([Job("environment", "wave", 4), Job("action", "wave", 9)])
    assert res[0].values and res[1].error and "wave" in res[1].error


def test_config_rejects_llm_composer_without_llm(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(json.dumps({"prompts": {"writer": "template", "composer": "llm"}}))
    with pytest.raises(ConfigError, match="composer.*needs writer 'openai'"):
        load_config(path)
