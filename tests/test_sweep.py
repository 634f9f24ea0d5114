"""rnngap sweep: grid files, validation, resumable local runs, failures, submitit (local)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnngap.cli import main
from rnngap.learned import sweep as S

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]

TINY = """
task = "index"
n = 6
size = "tiny"
steps = 2
batch_size = 4
eval_samples = 4
[axes]
arch = ["transformer", "mamba"]
"""


def _grid(tmp_path: Path, text: str, name: str = "g.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _sweep(*args):
    return CliRunner().invoke(main, ["sweep", *[str(a) for a in args], "--no-progress"])


def test_expand_product_names_and_defaults(tmp_path: Path) -> None:
    runs = S.expand(S.load_grid(_grid(tmp_path, TINY + 'seed = [0, 1]\n')))  # an axis
    assert len(runs) == 4 and len({r["name"] for r in runs}) == 4
    assert {r["arch"] for r in runs} == {"transformer", "mamba"}
    assert all(r["format"] == "plain" and r["eval_samples"] == 4 for r in runs)
    j = tmp_path / "g.json"
    j.write_text(json.dumps({"task": "index", "n": 6, "axes": {"arch": ["mamba"]}}))
    assert S.expand(S.load_grid(j))[0]["arch"] == "mamba"


@pytest.mark.parametrize("text,needle", [
    (TINY + "colour = 3\n", "unknown key 'colour'"),
    ("task = 'index'\nn = 6\n[axes]\narch = []\n", "non-empty list"),
    ("task = 'index'\nn = 6\n[axes]\narch = ['mamba', 'mamba']\n", "duplicated runs"),
    ("task = 'index'\n[axes]\narch = ['mamba']\n", "n is required"),
    ("task = 'index'\nn = 6\nlr = -1.0\n[axes]\narch = ['mamba']\n", "lr must be"),
    (("task = 'index'\nn = 6\nembedding = 'official'\n[model]\nd_model = 3\n[axes]\n"
      "arch = ['transformer']\n"), "d_model"),
    ("task = 'index'\nn = 6\n[model]\nwidth = 3\n[axes]\narch = ['mamba']\n", "[model] takes"),
    ("task = 'istree'\nn = 6\nformat = 'poetry'\n[axes]\narch = ['mamba']\n", "format"),
    ("this is = = not toml", "not valid TOML"),
])
def test_bad_grids_are_refused_before_anything_runs(tmp_path: Path, text, needle) -> None:
    r = _sweep(_grid(tmp_path, text), "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_local_sweep_runs_skips_and_refuses_another_grid(tmp_path: Path) -> None:
    g = _grid(tmp_path, TINY)
    out = tmp_path / "out"
    r = _sweep(g, "--out", out, "--workers", "2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["finished"] == 2
    rows = S.read_results(out)
    assert len(rows) == 2 and all(set(S.RESULT_KEYS) <= set(x) for x in rows)
    assert all(x["status"] == "finished" and 0 <= x["accuracy_generation"] <= 1 for x in rows)
    # a run directory is an ordinary run: eval reads it
    assert CliRunner().invoke(main, ["eval", str(out / rows[0]["run"]), "--samples", "4",
                                     "--no-progress"]).exit_code == 0
    r = _sweep(g, "--out", out, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["ran_now"] == 0
    r = _sweep(_grid(tmp_path, TINY.replace("steps = 2", "steps = 3"), "h.toml"), "--out", out)
    assert r.exit_code == 2 and "another grid" in r.stderr


def test_interrupted_run_resumes_and_failed_run_is_recorded(tmp_path: Path,
                                                            monkeypatch) -> None:
    from rnngap.learned.train import train
    g = _grid(tmp_path, TINY.replace("steps = 2", "steps = 4"))
    runs = S.expand(S.load_grid(g))
    out = tmp_path / "out"
    # a run killed after 1 of 4 steps: checkpoint, no result
    model, data, tc = S.build(runs[0])
    train(out / runs[0]["name"], model, data, tc, progress=False, stop_after=1)
    assert [r["name"] for r in S.pending(out, runs)] == [r["name"] for r in runs]
    row = S.run_one(runs[0], str(out))
    assert row["status"] == "finished" and row["steps_done"] == 4
    # a run that crashes is recorded with its error; the sweep's bookkeeping goes on
    import rnngap.learned.evaluate as ev

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(ev, "evaluate", boom)
    row = S.run_one(runs[1], str(out))
    assert row["status"] == "failed" and "disk on fire" in row["error"]
    rows = S.write_results(out, runs)
    assert [x["status"] for x in rows] == ["finished", "failed"]
    assert S.pending(out, runs) == [] and S.pending(out, runs, retry_failed=True) == [runs[1]]


def test_lr_from_takes_each_architectures_best(tmp_path: Path) -> None:
    src = tmp_path / "lr"
    src.mkdir()
    rows = [{"arch": "mamba", "lr": 1e-3, "status": "finished", "accuracy_generation": 0.5},
            {"arch": "mamba", "lr": 3e-3, "status": "finished", "accuracy_generation": 0.9},
            {"arch": "mamba", "lr": 1e-2, "status": "failed"},
            {"arch": "transformer", "lr": 1e-2, "status": "finished",
             "accuracy_generation": 0.7}]
    (src / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert S.best_lrs(src, "x") == {"mamba": 3e-3, "transformer": 1e-2}
    g = _grid(tmp_path, 'lr_from = "lr"\n' + TINY)
    r = _sweep(g, "--out", tmp_path / "out", "--dry-run", "--json")
    assert r.exit_code == 0 and all(x["pending"] for x in json.loads(r.stdout))
    g2 = _grid(tmp_path, 'lr_from = "lr"\n' + TINY.replace('"mamba"]', '"mamba", "hybrid"]'),
               "g2.toml")
    r = _sweep(g2, "--out", tmp_path / "out2")
    assert r.exit_code == 2 and "no finished run for ['hybrid']" in r.stderr


def test_submitit_local_executor(tmp_path: Path) -> None:
    pytest.importorskip("submitit", reason="the cluster extra is not installed")
    g = _grid(tmp_path, TINY.replace('["transformer", "mamba"]', '["mamba"]'))
    r = _sweep(g, "--out", tmp_path / "out", "--launcher", "submitit", "--cluster", "local",
               "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["finished"] == 1
    assert S.read_results(tmp_path / "out")[0]["status"] == "finished"


def test_unreachable_cluster_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("submitit", reason="the cluster extra is not installed")
    import shutil
    if shutil.which("sbatch"):
        pytest.skip("this machine has SLURM")
    r = _sweep(_grid(tmp_path, TINY), "--out", tmp_path / "out", "--launcher", "submitit",
               "--cluster", "slurm")
    assert r.exit_code == 2 and "sbatch" in r.stderr
    assert not (tmp_path / "out").exists()


def _children(pid: int) -> list[int]:
    import subprocess
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    # the run processes, not multiprocessing's resource tracker
    return [int(line.split()[0]) for line in out.splitlines()
            if "spawn_main" in line and "resource_tracker" not in line]


def _launch(tmp_path: Path, text: str, *extra: str):
    import os
    import subprocess
    import sys
    g = _grid(tmp_path, text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rnngap.cli", "sweep", str(g), "--out",
                             str(tmp_path / "out"), "--no-progress", *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_children(p, count: int, out: Path | None = None, limit: float = 90.0) -> list[int]:
    """The run processes, once ``count`` exist (and, given ``out``, have started training:
    their run directories hold a config.json)."""
    import time
    t0 = time.time()
    while time.time() - t0 < limit:
        kids = _children(p.pid)
        started = out is None or len(list(out.glob("*/config.json"))) >= count
        if len(kids) >= count and started:
            time.sleep(1.0 if out is not None else 0.3)
            return kids
        time.sleep(0.2)
    raise AssertionError("the sweep did not start its workers")


LONG = TINY.replace("steps = 2", "steps = 4000")


@pytest.mark.slow
def test_a_killed_run_is_recorded_as_failed_and_the_others_finish(tmp_path: Path) -> None:
    import os
    import signal
    p = _launch(tmp_path, LONG, "--workers", "2")
    kids = _wait_children(p, 2, tmp_path / "out")
    os.kill(kids[0], signal.SIGKILL)
    _, err = p.communicate(timeout=240)
    assert p.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    rows = S.read_results(tmp_path / "out")
    assert sorted(r["status"] for r in rows) == ["failed", "finished"]
    assert "died" in next(r["error"] for r in rows if r["status"] == "failed")


def test_ctrl_c_starts_nothing_new_and_exits_130(tmp_path: Path) -> None:
    import os
    import signal
    import time
    p = _launch(tmp_path, LONG.replace('["transformer", "mamba"]',
                                       '["transformer", "mamba", "hybrid"]'), "--workers", "1")
    _wait_children(p, 1, tmp_path / "out")
    t0 = time.time()
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert time.time() - t0 < 60 and "interrupted" in err and "Traceback" not in err
    made = [d.name for d in (tmp_path / "out").iterdir() if d.is_dir()]
    assert len(made) == 1                 # the queued runs never started
    # a re-launch resumes the interrupted run from its checkpoint and runs the other two
    assert (tmp_path / "out" / made[0] / "checkpoint.safetensors").is_file()
    r = _sweep(_grid(tmp_path, LONG.replace('["transformer", "mamba"]',
                                            '["transformer", "mamba", "hybrid"]')),
               "--out", tmp_path / "out", "--dry-run", "--json")
    assert r.exit_code == 0 and all(x["pending"] for x in json.loads(r.stdout))


def test_review_fixes_names_sizes_options_and_data_checks(tmp_path: Path) -> None:
    # a [model] table refines the named size instead of replacing it by another
    g = _grid(tmp_path, 'task = "index"\nn = 6\nsize = "tiny"\n[model]\nd_model = 16\n'
              '[axes]\narch = ["mamba"]\n')
    r = S.expand(S.load_grid(g))[0]
    from rnngap.learned.configs import named_config
    model, _, _ = S.build(r)
    assert model.d_model == 16 and model.d_state == named_config("mamba", "tiny", 8).d_state
    # every swept key is in the run name: no false "duplicated runs"
    runs = S.expand(S.load_grid(_grid(tmp_path, TINY + "batch_size = [4, 8]\n", "b.toml")))
    assert len({x["name"] for x in runs}) == 4
    runs = S.expand(S.load_grid(_grid(tmp_path, TINY + "lr = [1e-3, 1.0000001e-3]\n", "c.toml")))
    assert len({x["name"] for x in runs}) == 4
    # values that are not JSON (a TOML date) and data that cannot be drawn: refused up front
    r = _sweep(_grid(tmp_path, 'name = 1979-05-27\n' + TINY, "d.toml"), "--out", tmp_path / "o1")
    assert r.exit_code == 2 and "values must be" in r.stderr
    r = _sweep(_grid(tmp_path, TINY.replace('task = "index"\nn = 6', 'task = "istree"\nn = 4'),
                     "e.toml"), "--out", tmp_path / "o2")
    assert r.exit_code == 2 and "held-out" in r.stderr
    # a re-launch with other training options is refused, not silently mixed
    g = _grid(tmp_path, TINY, "f.toml")
    assert _sweep(g, "--out", tmp_path / "o3", "--samples", "8").exit_code == 0
    r = _sweep(g, "--out", tmp_path / "o3", "--samples", "16")
    assert r.exit_code == 2 and "other training options" in r.stderr
    rows = S.read_results(tmp_path / "o3")
    assert all(x["steps"] == 2 and x["batch_size"] == 4 for x in rows)     # 8 samples / 4


def test_ctrl_c_while_runs_are_still_starting_leaves_no_traceback(tmp_path: Path) -> None:
    import os
    import signal
    p = _launch(tmp_path, LONG, "--workers", "2")
    _wait_children(p, 2)                  # processes exist, probably still importing torch
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
