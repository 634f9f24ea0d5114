"""Turing machines: the text format, the direct simulator, the compiled RNN + retrieval."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rnngap.cli import main
from rnngap.constructions import turing as TM
from rnngap.constructions.turing_machines import SPECS

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
