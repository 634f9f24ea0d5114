"""A table of bad invocations across every command (issue: reliability).

Each case must end cleanly: the expected non-zero exit code (2: a user error), exactly one line
on stderr, no traceback, and a pre-existing sentinel directory (a finished run) untouched.
Memory-heavy requests run with ``--max-memory`` (the limit is set inside the test), so a
refusal is tested without the machine's size mattering and nothing large is ever allocated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnngap.cli import main

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def invoke(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files and runs the cases point at, built once."""
    d = tmp_path_factory.mktemp("bad")
    w = {"d": d}
    # a finished training run: the sentinel that must never change
    run = d / "sentinel"
    r = invoke(["train", "--task", "ar", "--n", "8", "--arch", "transformer", "--size", "tiny",
                "--steps", "2", "--log-every", "1", "--eval-every", "2", "--no-progress",
                "--out", run])
    assert r.exit_code == 0, r.output
    w["sentinel"] = run
    ist = d / "istree-run"
    r = invoke(["train", "--task", "istree", "--n", "6", "--arch", "mamba", "--size", "tiny",
                "--steps", "1", "--eval-every", "1", "--no-progress", "--out", ist])
    assert r.exit_code == 0, r.output
    w["istree"] = ist
    # damaged copies of the sentinel
    import torch
    from safetensors.torch import load_file, save_file

    from rnngap.learned.checkpoint import tensor_digest
    nan = d / "nan-run"
    shutil.copytree(run, nan)
    ck = nan / "checkpoint.safetensors"
    t = load_file(ck)
    key = next(k for k, v in t.items() if v.is_floating_point() and v.numel() > 1)
    t[key] = torch.full_like(t[key], float("nan"))
    meta = _metadata(run / "checkpoint.safetensors")
    inner = json.loads(meta["meta"])
    inner["tensor_sha256"] = tensor_digest(t)        # a consistent file: only the NaN is wrong
    save_file(t, ck, metadata={"meta": json.dumps(inner)})
    w["nan"] = nan
    garbled = d / "garbled-run"
    shutil.copytree(run, garbled)
    raw = bytearray((garbled / "checkpoint.safetensors").read_bytes())
    for i in range(len(raw) - 64, len(raw) - 8):       # tensor bytes at the end of the file
        raw[i] ^= 0x5A
    (garbled / "checkpoint.safetensors").write_bytes(bytes(raw))
    w["garbled"] = garbled
    edited = d / "edited-run"
    shutil.copytree(run, edited)
    cfg = json.loads((edited / "config.json").read_text())
    cfg["model"]["n_heads"] = 1 if cfg["model"].get("n_heads", 1) != 1 else 2
    (edited / "config.json").write_text(json.dumps(cfg))
    w["edited"] = edited
    nocfg = d / "no-config"
    nocfg.mkdir()
    (nocfg / "notes.txt").write_text("not a run\n")
    w["nocfg"] = nocfg
    files = {
        "inf.json": '{"arch": "mamba", "d_model": Infinity, "n_layers": 2}',
        "list.json": '{"arch": "mamba", "d_model": [64, 2], "n_layers": 2}',
        "toplist.json": "[1, 2, 3]",
        "notjson.json": "this is not json",
        "empty.json": "",
        "absurd.json": '{"hidden_size": 10000000, "num_hidden_layers": 64, "state_size": 16}',
        "offinf.json": '{"hidden_size": Infinity, "num_hidden_layers": 2, "state_size": 16}',
        "results-bad.json": '{"not": "a list"}',
        "results-rows.json": '[{"task": "ar"}]',
        "badmod.py": "def step(state, token:\n    return state\n",
        "notcall.py": "step = 3\n",
        "raises.py": "raise RuntimeError('module refuses to import')\n",
        "tm-bad.txt": "this is not a machine\n",
        "exists.png": "an earlier plot\n",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    w["afile"] = d / "notjson.json"
    return w


def _metadata(path: Path) -> dict | None:
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return f.metadata()


# (id, argv with {placeholders}, expected exit code). Placeholders: {d} the fixture dir,
# {sentinel} the finished run, {istree} a run of another task, {nan}/{garbled}/{edited}
# damaged runs, {nocfg} a directory that is not a run, {afile} a file.
CASES: list[tuple[str, list[str], int]] = [
    # --- top level
    ("unknown-command", ["nosuch"], 2),
    ("unknown-option", ["verify", "index", "--n", "8", "--bogus"], 2),
    # --- verify
    ("verify-n-zero", ["verify", "index", "--n", "0"], 2),
    ("verify-n-negative", ["verify", "index", "--n", "-5"], 2),
    ("verify-n-text", ["verify", "index", "--n", "abc"], 2),
    ("verify-n-huge", ["verify", "ar", "--n", "1000000000"], 2),
    ("verify-unknown-task", ["verify", "nosuch", "--n", "8"], 2),
    ("verify-cgram-c0", ["verify", "cgram", "--n", "8", "--c", "0"], 2),
    ("verify-cgram-c-gt-n", ["verify", "cgram", "--n", "8", "--c", "9"], 2),
    ("verify-cgram-memory", ["verify", "cgram", "--n", "4096", "--c", "300",
                             "--max-memory", "2G"], 2),
    ("verify-alphabet-zero", ["verify", "counting", "--n", "8", "--alphabet", "0"], 2),
    ("verify-precision-zero", ["verify", "index", "--n", "8", "--precision", "0"], 2),
    ("verify-plot-into-missing-dir", ["verify", "index", "--n", "8", "--plot",
                                      "{d}/missing/dir/p.png"], 2),
    ("verify-plot-over-run", ["verify", "index", "--n", "8", "--plot", "{sentinel}"], 2),
    ("verify-plot-exists", ["verify", "index", "--n", "8", "--plot", "{d}/exists.png"], 2),
    ("verify-plot-format", ["verify", "index", "--n", "8", "--plot", "{d}/p.xyz"], 2),
    ("verify-istree-n1", ["verify", "istree", "--n", "1"], 2),
    ("verify-istree-method", ["verify", "istree", "--n", "5", "--method", "bogus"], 2),
    ("verify-istree-jobs0", ["verify", "istree", "--n", "5", "--jobs", "0"], 2),
    ("verify-istree-seed", ["verify", "istree", "--n", "5", "--seed", "-1"], 2),
    ("verify-istree-memory", ["verify", "istree", "--n", "4096", "--orders", "all",
                              "--max-memory", "1G"], 2),
    ("verify-max-memory-garbage", ["verify", "index", "--n", "8", "--max-memory", "lots"], 2),
    # --- construct
    ("construct-over-run", ["construct", "index", "--n", "8", "--out", "{sentinel}"], 2),
    ("construct-over-file", ["construct", "index", "--n", "8", "--out", "{afile}"], 2),
    ("construct-n-zero", ["construct", "index", "--n", "0", "--out", "{d}/c1"], 2),
    ("construct-cgram-memory", ["construct", "cgram", "--n", "1048576", "--c", "500000",
                                "--out", "{d}/c2", "--max-memory", "2G"], 2),
    ("construct-model-bogus", ["construct", "istree", "--model", "bogus", "--out", "{d}/c3"], 2),
    ("construct-c-on-index", ["construct", "index", "--n", "8", "--c", "3", "--out", "{d}/c4"],
     2),
    ("construct-no-out", ["construct", "index", "--n", "8"], 2),
    # --- bound
    ("bound-nothing", ["bound"], 2),
    ("bound-state-bits-negative", ["bound", "--state-bits", "-1"], 2),
    ("bound-state-bits-zero", ["bound", "--state-bits", "0"], 2),
    ("bound-config-infinity", ["bound", "--config", "{d}/inf.json"], 2),
    ("bound-config-list-field", ["bound", "--config", "{d}/list.json"], 2),
    ("bound-config-top-list", ["bound", "--config", "{d}/toplist.json"], 2),
    ("bound-config-not-json", ["bound", "--config", "{d}/notjson.json"], 2),
    ("bound-config-empty", ["bound", "--config", "{d}/empty.json"], 2),
    ("bound-config-missing", ["bound", "--config", "{d}/missing.json"], 2),
    ("bound-config-dir", ["bound", "--config", "{sentinel}"], 2),
    ("bound-arch-unknown", ["bound", "--arch", "nosuch-7b"], 2),
    ("bound-task-n-zero", ["bound", "--task", "index", "--n", "0"], 2),
    ("bound-d-model-negative", ["bound", "--arch", "mamba", "--d-model", "-3",
                                "--n-layers", "2"], 2),
    ("bound-plot-missing-dir", ["bound", "--state-bits", "64", "--plot",
                                "{d}/missing/dir/p.png"], 2),
    ("bound-plot-over-run", ["bound", "--state-bits", "64", "--plot", "{sentinel}"], 2),
    ("bound-plot-exists", ["bound", "--state-bits", "64", "--plot", "{d}/exists.png"], 2),
    ("bound-plot-dir-slash", ["bound", "--state-bits", "64", "--plot", "{d}/p.png/"], 2),
    ("bound-oracle-istree", ["bound", "--task", "istree", "--oracle", "ar", "--n", "5"], 2),
    ("bound-oracle-rule", ["bound", "--task", "cgram", "--oracle", "ar", "--n", "5",
                           "--occurrence", "middle"], 2),
    ("bound-oracle-c1", ["bound", "--task", "cgram", "--oracle", "ar", "--n", "5", "--c", "1"],
     2),
    ("bound-oracle-brute-too-big", ["bound", "--task", "cgram", "--c", "3", "--oracle", "ar",
                                    "--n", "40", "--brute"], 2),
    ("bound-oracle-nothing", ["bound", "--oracle", "ar"], 2),
    ("bound-occurrence-without-oracle", ["bound", "--state-bits", "64", "--occurrence",
                                         "last"], 2),
    # --- fool
    ("fool-seed-negative", ["fool", "--state-bits", "8", "--seed", "-1"], 2),
    ("fool-state-bits-zero", ["fool", "--state-bits", "0"], 2),
    ("fool-n-huge", ["fool", "--state-bits", "8", "--n", "100000"], 2),
    ("fool-max-samples-zero", ["fool", "--state-bits", "8", "--max-samples", "0"], 2),
    ("fool-machine-syntax-error", ["fool", "--state-bits", "8", "--machine", "{d}/badmod.py:step"],
     2),
    ("fool-machine-module-syntax-error", ["fool", "--state-bits", "8", "--machine",
                                          "badmod:step"], 2),
    ("fool-machine-missing-module", ["fool", "--state-bits", "8", "--machine",
                                     "nosuchmodule_xyz:step"], 2),
    ("fool-machine-missing-attr", ["fool", "--state-bits", "8", "--machine", "os:nosuchattr"], 2),
    ("fool-machine-not-callable", ["fool", "--state-bits", "8", "--machine", "notcall:step"], 2),
    ("fool-machine-import-raises", ["fool", "--state-bits", "8", "--machine", "raises:step"], 2),
    ("fool-cgram-without-oracle", ["fool", "--task", "cgram", "--state-bits", "8"], 2),
    ("fool-oracle-ar-keys", ["fool", "--task", "ar", "--state-bits", "8", "--oracle", "ar",
                             "--search", "keys"], 2),
    ("fool-oracle-odd-ar", ["fool", "--task", "ar", "--state-bits", "8", "--oracle", "ar",
                            "--n", "7"], 2),
    ("verify-ar-oracle-odd", ["verify", "ar-oracle", "--n", "5"], 2),
    ("verify-ar-oracle-too-big", ["verify", "ar-oracle", "--n", "12"], 2),
    # --- run
    ("run-istree-bad-edges", ["run", "istree", "--n", "4", "--edges", "1-2,garbage"], 2),
    ("run-istree-seed-negative", ["run", "istree", "--n", "4", "--seed", "-1"], 2),
    ("run-tm-unknown", ["run", "tm", "--machine", "nosuch", "--input", "01"], 2),
    ("run-tm-missing-file", ["run", "tm", "--file", "{d}/missing.txt", "--input", "01"], 2),
    ("run-tm-bad-file", ["run", "tm", "--file", "{d}/tm-bad.txt", "--input", "01"], 2),
    # --- train
    ("train-over-run", ["train", "--task", "ar", "--n", "8", "--steps", "1", "--no-progress",
                        "--out", "{sentinel}"], 2),
    ("train-over-non-run", ["train", "--task", "ar", "--n", "8", "--steps", "1", "--no-progress",
                            "--out", "{nocfg}"], 2),
    ("train-over-file", ["train", "--task", "ar", "--n", "8", "--steps", "1", "--out", "{afile}"],
     2),
    ("train-memory-n", ["train", "--task", "ar", "--n", "8192", "--arch", "transformer",
                        "--out", "{d}/t1", "--max-memory", "4G"], 2),
    ("train-memory-config", ["train", "--task", "istree", "--n", "8", "--config",
                             "{d}/absurd.json", "--out", "{d}/t2", "--max-memory", "4G"], 2),
    ("train-config-infinity", ["train", "--task", "istree", "--n", "8", "--config",
                               "{d}/offinf.json", "--out", "{d}/t3"], 2),
    ("train-config-not-json", ["train", "--task", "istree", "--n", "8", "--config",
                               "{d}/notjson.json", "--out", "{d}/t4"], 2),
    ("train-task-param-n", ["train", "--task", "ar", "--n", "8", "--task-param", "n=6",
                            "--out", "{d}/t5"], 2),
    ("train-task-param-no-eq", ["train", "--task", "ar", "--n", "8", "--task-param", "garbage",
                                "--out", "{d}/t6"], 2),
    ("train-task-param-unknown", ["train", "--task", "ar", "--n", "8", "--task-param", "zz=1",
                                  "--out", "{d}/t7"], 2),
    ("train-resume-missing", ["train", "--resume", "{d}/missing-run"], 2),
    ("train-resume-not-run", ["train", "--resume", "{nocfg}"], 2),
    ("train-resume-edited", ["train", "--resume", "{edited}", "--no-progress"], 2),
    ("train-resume-garbled", ["train", "--resume", "{garbled}", "--no-progress"], 2),
    ("train-resume-nan", ["train", "--resume", "{nan}", "--no-progress"], 2),
    ("train-steps-zero", ["train", "--task", "ar", "--n", "8", "--steps", "0", "--out", "{d}/t8"],
     2),
    ("train-lr-negative", ["train", "--task", "ar", "--n", "8", "--lr", "-1", "--out", "{d}/t9"],
     2),
    ("train-lr-nan", ["train", "--task", "ar", "--n", "8", "--lr", "nan", "--out", "{d}/t10"], 2),
    ("train-embedding-bogus", ["train", "--task", "ar", "--n", "8", "--embedding", "bogus",
                               "--out", "{d}/t11"], 2),
    ("train-batch-zero", ["train", "--task", "ar", "--n", "8", "--batch-size", "0",
                          "--out", "{d}/t12"], 2),
    ("train-format-bogus", ["train", "--task", "istree", "--n", "8", "--format", "bogus",
                            "--out", "{d}/t13"], 2),
    ("train-no-out", ["train", "--task", "ar", "--n", "8"], 2),
    ("train-device-cuda-missing", ["train", "--task", "ar", "--n", "8", "--device", "cuda:7",
                                   "--out", "{d}/t14"], 2),
    # --- eval
    ("eval-missing", ["eval", "{d}/missing-run"], 2),
    ("eval-not-run", ["eval", "{nocfg}"], 2),
    ("eval-file", ["eval", "{afile}"], 2),
    ("eval-nan-weights", ["eval", "{nan}", "--samples", "8", "--no-progress"], 2),
    ("eval-garbled", ["eval", "{garbled}", "--samples", "8", "--no-progress"], 2),
    ("eval-edited-config", ["eval", "{edited}", "--samples", "8", "--no-progress"], 2),
    ("eval-n-bigger-vocab", ["eval", "{sentinel}", "--n", "64", "--no-progress"], 2),
    ("eval-n-huge", ["eval", "{sentinel}", "--n", "100000"], 2),
    ("eval-samples-zero", ["eval", "{sentinel}", "--samples", "0"], 2),
    ("eval-seed-negative", ["eval", "{sentinel}", "--seed", "-1"], 2),
    ("eval-device-bogus", ["eval", "{sentinel}", "--device", "tpu"], 2),
    ("eval-memory", ["eval", "{istree}", "--n", "4096", "--samples", "64",
                     "--max-memory", "1G"], 2),
    # --- params
    ("params-n-small", ["params", "--arch", "mamba", "--n", "2"], 2),
    ("params-context-zero", ["params", "--arch", "transformer", "--context", "0"], 2),
    ("params-arch-bogus", ["params", "--arch", "bogus"], 2),
    # --- report
    ("report-runs-other-task", ["report", "--task", "ar", "--runs", "{istree}",
                                "--out", "{d}/r1"], 2),
    ("report-over-run", ["report", "--task", "ar", "--out", "{sentinel}"], 2),
    ("report-results-missing", ["report", "--task", "ar", "--results", "{d}/missing.json",
                                "--out", "{d}/r2"], 2),
    ("report-results-not-list", ["report", "--task", "ar", "--results", "{d}/results-bad.json",
                                 "--out", "{d}/r3"], 2),
    ("report-results-bad-rows", ["report", "--task", "ar", "--results",
                                 "{d}/results-rows.json", "--out", "{d}/r4"], 2),
    ("report-runs-and-results", ["report", "--task", "ar", "--runs", "{sentinel}", "--results",
                                 "{d}/results-bad.json", "--out", "{d}/r5"], 2),
    ("report-runs-not-run", ["report", "--task", "ar", "--runs", "{nocfg}", "--out", "{d}/r6"],
     2),
    # --- claims
    ("claims-unknown", ["claims", "--claim", "C99"], 2),
]


#: the reason that must be named in the message, where it matters
MUST_SAY = {
    "verify-cgram-memory": "needs about", "construct-cgram-memory": "needs about",
    "train-memory-n": "needs about", "train-memory-config": "needs about",
    "eval-memory": "needs about", "verify-istree-memory": "edge sets",
    "construct-over-run": "--overwrite", "verify-plot-exists": "--overwrite",
    "bound-plot-exists": "--overwrite", "verify-plot-format": "image format", "train-over-run": "--overwrite",
    "train-over-non-run": "--overwrite", "report-over-run": "--overwrite",
    "eval-nan-weights": "NaN", "train-resume-nan": "NaN",
    "eval-garbled": "digest", "train-resume-garbled": "digest",
    "eval-edited-config": "changed", "train-resume-edited": "changed",
    "bound-config-infinity": "Infinity", "bound-config-list-field": "d_model",
    "fool-machine-module-syntax-error": "syntax error", "fool-machine-import-raises": "raised",
    "train-task-param-n": "--n", "report-runs-other-task": "istree",
    "eval-n-bigger-vocab": "learned embedding", "bound-oracle-brute-too-big": "too large",
    "verify-ar-oracle-too-big": "too many", "train-config-infinity": "Infinity",
}


def _fill(args: list[str], w: dict) -> list[str]:
    keys = {k: str(v) for k, v in w.items()}
    return [a.format(**keys) for a in args]


def test_table_is_large_and_ids_unique():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)
    assert set(MUST_SAY) <= {c[0] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_invocation(case, world, monkeypatch):
    cid, argv, code = case
    monkeypatch.chdir(world["d"])           # module:function machines are found from here
    before = tree_digest(world["sentinel"])
    r = invoke(_fill(argv, world))
    assert r.exit_code == code, f"{cid}: exit {r.exit_code}\n{r.output}"
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"{cid}: raised {r.exception!r}"
    assert "Traceback" not in r.output
    msg = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(msg) == 1, f"{cid}: expected one line on stderr, got:\n{r.stderr}"
    assert msg[0].startswith("Error: ")
    if cid in MUST_SAY:
        assert MUST_SAY[cid] in msg[0], f"{cid}: the message does not say why: {msg[0]}"
    assert tree_digest(world["sentinel"]) == before, f"{cid}: the sentinel run changed"
