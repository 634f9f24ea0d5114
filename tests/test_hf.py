"""Bring your own model: transformers causal LMs on the retrieval tasks, and rnngap runs exported
to transformers (learned/hf.py). Tiny random models and a tiny character tokenizer are built
locally; nothing is downloaded. Skipped (visibly) without the hf extra."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")

from rnngap.cli import main
from rnngap.learned import hf as H

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]

CHARS = list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:- \n")


def char_tokenizer(chars=CHARS):
    """A character-level fast tokenizer (every character one token)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    vocab = {"<unk>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    t.decoder = decoders.Fuse()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>",
                                                eos_token="<eos>", pad_token="<eos>")


def _save(path: Path, cfg, tok) -> Path:
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    tok = char_tokenizer()
    v = len(tok)
    llama = _save(d / "llama", transformers.LlamaConfig(
        vocab_size=v, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=160), tok)
    mamba = _save(d / "mamba", transformers.MambaConfig(
        vocab_size=v, hidden_size=16, state_size=4, num_hidden_layers=2), tok)
    nodigits = _save(d / "nodigits", transformers.LlamaConfig(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2), char_tokenizer(list("abcdefghij:- \n")))
    t5 = d / "t5"
    transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=v, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)).save_pretrained(t5)
    tok.save_pretrained(t5)
    notmodel = d / "notmodel"
    notmodel.mkdir()
    (notmodel / "readme.txt").write_text("no config here")
    return {"llama": llama, "mamba": mamba, "nodigits": nodigits, "t5": t5,
            "notmodel": notmodel, "d": d}


def _run(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r


# ----------------------------------------------------------------------------- rendering
def test_render_is_deterministic_and_answers_are_in_the_prompt() -> None:
    for task in H.TASKS:
        n = 6
        a = H.render(task, n, np.random.default_rng(3))
        assert a == H.render(task, n, np.random.default_rng(3))
        prompt, want = a
        if task == "phonebook":
            name = prompt.rsplit("\n", 1)[1].rstrip(":")
            assert f"{name}: {want}" in prompt and len(prompt.splitlines()) == n + 2
        if task == "ar":
            q = prompt.rsplit("\n", 1)[1].rstrip(":")
            assert f"{q}:{want}" in prompt.split("\n")[0].split()
        if task == "index":
            data, tail = prompt.split("\n")
            assert data.split()[int(tail.split()[1].rstrip(":")) - 1] == want
    assert len(set(H.names(4352))) == 4352


@pytest.mark.parametrize("text,want", [(" 123-4567\nKalo", "123-4567"), ("7 8", "7"),
                                       ("", ""), ("   \n", ""), ("12:3", "12:3")])
def test_parse(text: str, want: str) -> None:
    assert H.parse(text) == want


class _Oracle(torch.nn.Module):
    """A 'model' whose generate() appends the right answer (or a wrong one): tests that the
    accuracy is exact match on the rendered answer, nothing else."""

    def __init__(self, tok, task, wrong=False):
        super().__init__()
        self.tok, self.task, self.wrong = tok, task, wrong
        self.p = torch.nn.Parameter(torch.zeros(1))

    def generate(self, ids, **_):
        prompt = self.tok.decode(ids[0])
        *body, last = prompt.split("\n")
        key = last.rstrip(":")
        if self.task == "phonebook":
            ans = dict(line.split(": ") for line in body if ": " in line)[key]
        elif self.task == "ar":
            ans = dict(p.split(":") for p in body[0].split())[key]
        else:
            ans = body[0].split()[int(key.split()[1]) - 1]
        if self.wrong:
            ans = ans + "0"
        out = self.tok(" " + ans + "\n", add_special_tokens=False, return_tensors="pt")
        return torch.cat([ids, out["input_ids"]], 1)


@pytest.mark.parametrize("task", H.TASKS)
def test_accuracy_is_exact_match(task) -> None:
    tok = char_tokenizer()
    for wrong, acc in ((False, 1.0), (True, 0.0)):
        lm = H.Loaded(_Oracle(tok, task, wrong), tok, "oracle", 64, None, None)
        assert H.evaluate_hf(lm, task, 8, 5)["accuracy"] == acc


# ----------------------------------------------------------------------------- CLI
def test_eval_hf_json_rows_and_bounds(models, tmp_path: Path) -> None:
    r = _run(["eval", "--hf", models["mamba"], "--task", "phonebook", "--ns", "2,4",
              "--samples", "3", "--json", "--no-progress", "--plot", tmp_path / "p.png"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["n"] for x in rows] == [2, 4]
    for x in rows:
        assert {"model", "task", "n", "accuracy", "samples", "state_bits", "kv_bits_at_n"} <= set(x)
        assert 0 <= x["accuracy"] <= 1 and x["samples"] == 3 and x["kv_bits_at_n"] is None
        # 2 layers x d_inner 32 x N 4 SSM state + 2 x 32 x 3 conv buffer, float32 (the model's)
        assert x["state_bits"] == 2 * 32 * 4 * 32 + 2 * 32 * 3 * 32
        assert 0 < x["fano_ceiling"] <= 1
    assert (tmp_path / "p.png").stat().st_size > 1000
    r = _run(["eval", "--hf", models["llama"], "--task", "ar", "--ns", "4", "--samples", "2",
              "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    # K and V, 2 layers, 1 KV head of dim 8, float32, per prompt token
    assert row["state_bits"] is None and row["kv_bits_at_n"] == 2 * 2 * 1 * 8 * 32 * \
        row["prompt_tokens"]


@pytest.mark.parametrize("args,needle", [
    (["--hf", "{notmodel}"], "not a transformers model folder"),
    (["--hf", "{t5}"], "encoder-decoder"),
    (["--hf", "{nodigits}"], "cannot render numbers"),
    (["--hf", "{llama}", "--ns", "16"], "context"),
    (["--hf", "{llama}", "--task", "ar", "--ns", "5"], "even"),
    (["{notmodel}", "--hf", "{llama}"], "not both"),
    (["--hf", "{llama}", "--samples", "0"], "--samples"),
    (["--hf", "{llama}", "--ns", "2", "--plot", "{d}/p.xyz"], "image format"),
    (["--hf", "{llama}", "--task", "phonebook", "--ns", "99999"], "4,352"),
])
def test_eval_hf_bad_input(models, args, needle) -> None:
    r = _run(["eval", "--samples", "2", "--no-progress",        # the case's options win
              *[a.format(**{k: str(v) for k, v in models.items()}) for a in args]])
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- export
@pytest.mark.parametrize("arch,cls", [("mamba", "MambaForCausalLM"),
                                      ("transformer", "LlamaForCausalLM")])
def test_export_round_trip_logits_agree(tmp_path: Path, arch, cls) -> None:
    from rnngap.learned.evaluate import load_run
    run = tmp_path / "run"
    assert _run(["train", "--task", "istree", "--n", "6", "--arch", arch, "--size", "tiny",
                 "--steps", "3", "--no-progress", "--out", run]).exit_code == 0
    r = _run(["export", run, "--out", tmp_path / "hf", "--json"])
    assert r.exit_code == 0, r.output
    m = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert type(m).__name__ == cls
    lm, *_ = load_run(run)
    x = torch.randint(0, lm.cfg.vocab_size, (2, 29), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = lm(x), m.eval()(x).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    # refused: an existing folder without --overwrite
    r = _run(["export", run, "--out", tmp_path / "hf"])
    assert r.exit_code == 2 and "--overwrite" in r.stderr


def test_export_refuses_what_does_not_map(tmp_path: Path) -> None:
    for arch, emb, needle in (("mamba", "learned", "position table"),
                              ("hybrid", "official", "no transformers class")):
        run = tmp_path / f"{arch}-{emb}"
        assert _run(["train", "--task", "ar", "--n", "8", "--arch", arch, "--size", "tiny",
                     "--embedding", emb, "--steps", "2", "--no-progress",
                     "--out", run]).exit_code == 0
        r = _run(["export", run, "--out", tmp_path / f"x-{arch}"])
        assert r.exit_code == 2 and needle in r.stderr
        assert not (tmp_path / f"x-{arch}").exists()


def test_export_refuses_to_replace_its_own_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _run(["train", "--task", "istree", "--n", "6", "--arch", "mamba", "--size", "tiny",
                 "--steps", "2", "--no-progress", "--out", run]).exit_code == 0
    r = _run(["export", run, "--out", run, "--overwrite"])
    assert r.exit_code == 2 and "would replace the run" in r.stderr
    assert (run / "checkpoint.safetensors").is_file()
