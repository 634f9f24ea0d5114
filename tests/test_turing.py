"""Turing machines: the text format, the direct simulator, the compiled RNN + retrieval."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rnngap.cli import main
from rnngap.constructions.turing import compiler as TM
from rnngap.constructions.turing.machines import SPECS

LOOP = """
name: loop
input: 0
start: a
accept: y
reject: n
a 0,_,> -> a = R
"""


@pytest.mark.parametrize("name", sorted(TM.MACHINES))
def test_compiled_equals_direct_and_spec_small(name):
    m = TM.MACHINES[name]
    out = TM.check_machine(m, 5 if name == "addition" else 6, SPECS[name])
    assert out["agree"], out["examples"]
    assert out["inputs"] == sum(len(m.input_alphabet) ** k for k in range(out["max_len"] + 1))
    assert out["peak_state_bits"] <= out["declared_state_bits"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TM.MACHINES))
def test_compiled_equals_direct_up_to_length_10(name):
    out = TM.check_machine(TM.MACHINES[name], 10, SPECS[name])
    assert out["agree"], out["examples"]


def test_specs_can_fail():
    assert not SPECS["increment"]("11", "accept", "11")
    assert not SPECS["addition"]("1+1", "accept", "001")
    assert SPECS["addition"]("1+1", "accept", "010")
    assert not SPECS["palindrome"]("ab", "accept", "")


def test_known_values():
    m = TM.MACHINES["addition"]
    r = TM.run_compiled(m, "1011+111")
    assert r.outcome == "accept" and int(r.tape, 2) == 0b1011 + 0b111
    assert TM.run_compiled(TM.MACHINES["increment"], "111").tape == "1000"
    assert TM.run_compiled(TM.MACHINES["anbn"], "aaabbb").outcome == "accept"
    assert TM.run_compiled(TM.MACHINES["palindrome"], "abaa").outcome == "reject"


def test_transcript_format():
    r = TM.run_compiled(TM.MACHINES["increment"], "1")
    assert r.transcript.startswith("[BOS] @ 0 #> @ 1 #1 [EOS] q:s [STARTSEARCH] @ 0 "
                                   "[ENDSEARCH] #> @ 0 #> R q:scan")
    assert r.transcript.endswith("q:acc [EOS] [STARTSEARCH] @ 1 [ENDSEARCH] #1 "
                                 "[STARTSEARCH] @ 2 [ENDSEARCH] #0 [EOS] [ACCEPT]")
    assert r.retrievals == r.steps + 2


def test_no_retrieval_breaks_it():
    m = TM.MACHINES["palindrome"]
    wrong = [x for x in TM.all_inputs(m, 4)
             if TM.run_compiled(m, x, retrieval=False).outcome != TM.simulate(m, x).outcome]
    assert wrong


def test_timeout_both_ways():
    m = TM.parse_machine(LOOP)
    assert TM.simulate(m, "0", max_steps=50).outcome == "timeout"
    assert TM.run_compiled(m, "0", max_steps=50).outcome == "timeout"


def test_timeout_reports_real_values_at_the_same_limit():
    # review item 2: a non-halting run is stopped after exactly max_steps steps in both
    # simulators, with the real tape / CoT / bits / retrievals (nothing hard-coded)
    m = TM.parse_machine(LOOP)
    run, ref = TM.run_compiled(m, "0", max_steps=50), TM.simulate(m, "0", max_steps=50)
    assert (run.outcome, run.tape, run.steps) == (ref.outcome, ref.tape, ref.steps) \
        == ("timeout", "0", 50)
    assert run.cot_len == 500 and run.retrievals == 50 and run.peak_bits > 0
    assert run.transcript.startswith("[BOS] @ 0 #> @ 1 #0 [EOS] q:a [STARTSEARCH]")
    # a halting machine cut short: both stop after exactly k steps, with the same tape
    inc = TM.MACHINES["increment"]
    for k in range(6):
        a, b = TM.run_compiled(inc, "", max_steps=k), TM.simulate(inc, "", max_steps=k)
        assert (a.outcome, a.tape, a.steps) == (b.outcome, b.tape, b.steps), k
    out = TM.check_machine(inc, 3, SPECS["increment"], max_steps=3)
    assert out["agree"] and out["not_halted"] > 0 and out["spec_skipped"] > 0


def test_drive_errors_are_not_timeouts(monkeypatch):
    # review item 2: only a step-limit stop is a 'timeout'; any other error is reported
    def broken(*a, **k):
        raise RuntimeError("emit called while reading the prompt")

    monkeypatch.setattr(TM, "drive", broken)
    with pytest.raises(RuntimeError, match="emit called"):
        TM.run_compiled(TM.MACHINES["increment"], "1")
    r = CliRunner().invoke(main, ["run", "tm", "--machine", "increment", "--input", "1"])
    assert r.exit_code == 1 and "not a step-limit stop" in r.output


def test_cli_nonhalting_and_max_steps(tmp_path):
    loop = tmp_path / "loop.tm"
    loop.write_text(LOOP)
    r = CliRunner().invoke(main, ["run", "tm", "--file", str(loop), "--input", "0", "--quiet",
                                  "--max-steps", "40"])
    assert r.exit_code == 0, r.output
    assert "did not halt within 40 steps" in r.output and "only up to the step limit" in r.output
    assert "retrievals: 40" in r.output and "peak state bits: 0" not in r.output
    r = CliRunner().invoke(main, ["run", "tm", "--file", str(loop), "--input", "0", "--quiet",
                                  "--max-steps", "40", "--json"])
    out = json.loads(r.stdout)
    assert out["halted"] is False and out["cot_tokens"] == 400 and out["output"] == "0"
    assert out["agree_only_up_to_step_limit"] and out["max_steps"] == 40
    r = CliRunner().invoke(main, ["run", "tm", "--file", str(loop), "--check-up-to", "2",
                                  "--max-steps", "20"])
    assert r.exit_code == 0 and "BOTH did not halt" in r.output
    for bad in (["--max-steps", "-1"], ["--max-steps", "10000000"]):
        r = CliRunner().invoke(main, ["run", "tm", "--file", str(loop), "--input", "0", *bad])
        assert r.exit_code == 2 and "--max-steps" in r.output


def test_cli_input_required_and_list_json():
    # review items 3 and 4
    r = CliRunner().invoke(main, ["run", "tm", "--machine", "increment"])
    assert r.exit_code == 2 and "--input" in r.output
    r = CliRunner().invoke(main, ["run", "tm", "--machine", "increment", "--input", ""])
    assert r.exit_code == 0 and "increment(''): accept, tape '1'" in r.output
    r = CliRunner().invoke(main, ["run", "tm", "--machine", "increment", "--check-up-to", "1",
                                  "--input", "1"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["run", "tm", "--list", "--json"])
    assert r.exit_code == 0
    assert {m["name"] for m in json.loads(r.stdout)} == set(TM.MACHINES)


@pytest.mark.parametrize("text,why", [
    (LOOP.replace("a 0,_,> -> a = R", "a 0 -> a = R"), "undefined transitions"),
    (LOOP.replace("= R", "= X"), "move must be"),
    (LOOP + "a 0 -> y = R\n", "defined twice"),
    (LOOP + "y 0 -> a = R\n", "halting state"),
    (LOOP.replace("start: a\n", ""), "missing 'start:'"),
    (LOOP + "garbage\n", "line"),
    (LOOP.replace("input: 0", "input: 00"), "single characters"),
])
def test_parse_errors(text, why):
    with pytest.raises(ValueError, match=why):
        TM.parse_machine(text)


def test_bad_input_symbol():
    with pytest.raises(ValueError, match="not in the input alphabet"):
        TM.MACHINES["increment"].check_input("102")


def test_cli(tmp_path):
    r = CliRunner().invoke(main, ["run", "tm", "--machine", "increment", "--input", "1011",
                                  "--json"])
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["output"] == "1100" and out["agree"]
    r = CliRunner().invoke(main, ["run", "tm", "--machine", "anbn", "--check-up-to", "4"])
    assert r.exit_code == 0 and "disagreements: 0" in r.output
    assert CliRunner().invoke(main, ["run", "tm", "--machine", "nope"]).exit_code == 2
    assert CliRunner().invoke(main, ["run", "tm", "--machine", "anbn", "--input",
                                     "abc"]).exit_code == 2
    bad = tmp_path / "bad.tm"
    bad.write_text(LOOP.replace("a 0,_,> -> a = R", "a 0 -> a = R"))
    r = CliRunner().invoke(main, ["run", "tm", "--file", str(bad), "--input", "0"])
    assert r.exit_code == 2 and "undefined transitions" in r.output
