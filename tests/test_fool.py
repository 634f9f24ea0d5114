"""Birthday search for fooling pairs on concrete finite-state machines."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from rnngap.commands.fool import fool
from rnngap.verify.bounds import fool as fl


def _check(res, machine):
    """Independent re-check: replay both inputs, compare states and true answers."""
    a, b, q = res.data_a, res.data_b, res.query
    assert a != b
    assert machine.run(a)[-1] == machine.run(b)[-1]
    assert machine.run(a + q)[-1] == machine.run(b + q)[-1]
    assert fl.answer(res.task, a, q) != fl.answer(res.task, b, q)


@pytest.mark.parametrize("spec", ["hash", "prefix"])
@pytest.mark.parametrize("task,n,k", [("index", 8, 9), ("ar", 12, 13), ("counting", 10, 11)])
def test_finds_verified_pair(spec, task, n, k):
    m = fl.load_machine(spec, 20, k)
    res = fl.birthday_search(task, m, n, k, seed=1)
    assert res is not None
    _check(res, m)


def test_vectorized_matches_scalar():
    import numpy as np

    for spec in ("hash", "prefix"):
        m = fl.load_machine(spec, 30, 17)
        data = np.random.default_rng(0).integers(0, 17, (50, 12))
        assert m.states(data).tolist() == [m.run(r)[-1] for r in data.tolist()]


def test_user_machine(tmp_path, monkeypatch):
    (tmp_path / "my_fsm.py").write_text(
        "def step(s, t):\n    return (s * 31 + t) % (1 << 16)\n"
        "def bad(s, t):\n    return 1 << 20\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = fl.load_machine("my_fsm:step", 16, 9)
    res = fl.birthday_search("index", m, 8, 9, seed=0, max_samples=1 << 16)
    _check(res, m)
    with pytest.raises(ValueError):
        fl.load_machine("my_fsm:bad", 16, 9).run([1])
    sys.modules.pop("my_fsm", None)


def test_cli_24_bits_json():
    r = CliRunner().invoke(fool, ["--task", "index", "--state-bits", "24", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["verified"] and d["answer_a"] != d["answer_b"] and d["bits"] == 24
    m = fl.load_machine("hash", 24, d["alphabet"])
    assert m.run(tuple(d["data_a"]))[-1] == m.run(tuple(d["data_b"]))[-1]


@pytest.mark.parametrize("args", [["--state-bits", "0"], ["--state-bits", "8", "--machine", "x"],
                                  ["--task", "ar", "--state-bits", "8", "--n", "7"]])
def test_cli_bad_input(args):
    assert CliRunner().invoke(fool, args).exit_code == 2


def test_cli_not_found_exit_1():
    r = CliRunner().invoke(fool, ["--state-bits", "40", "--max-samples", "100"])
    assert r.exit_code == 1


@pytest.mark.parametrize("args,msg", [
    (["--state-bits", "16", "--machine", "os:getcwd"], "f(state: int, token: int)"),
    (["--state-bits", "16", "--machine", "os:sep"], "not callable"),
    (["--state-bits", "8", "--n", "1000000000"], "<="),
    (["--state-bits", "8", "--max-samples", "0"], ">= 1")])
def test_cli_review_bad_input_exit_2(args, msg):
    r = CliRunner().invoke(fool, args)
    assert r.exit_code == 2 and msg in r.output, r.output


def test_user_machine_from_current_directory(tmp_path, monkeypatch):
    (tmp_path / "cwd_fsm.py").write_text("def step(s, t):\n    return (s * 7 + t) % 256\n")
    monkeypatch.chdir(tmp_path)
    try:
        m = fl.load_machine("cwd_fsm:step", 8, 9)
        assert m.run([1, 2]) == [1, 9]
        assert str(tmp_path) not in sys.path  # only added for the import
    finally:
        sys.modules.pop("cwd_fsm", None)


def test_no_pair_guaranteed_warning_and_exact_progress():
    r = CliRunner().invoke(fool, ["--state-bits", "30", "--n", "3", "--max-samples", "5000"])
    assert r.exit_code == 1 and "no fooling pair is guaranteed" in r.output
    seen = []
    m = fl.load_machine("hash", 40, 4)
    assert fl.birthday_search("index", m, 3, 4, max_samples=5000, progress=seen.append) is None
    assert sum(seen) == 5000
    r = CliRunner().invoke(fool, ["--task", "index", "--state-bits", "24", "--json"])
    assert json.loads(r.output)["pair_guaranteed"] is True
