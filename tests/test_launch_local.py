"""The local engine of mtrl.launch (mtrl/launch/_local.py): parallel subprocesses, one torch thread each by default,
a failed job reported with its status and last line while the others go on, a non-zero outcome at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtrl.launch import Job, launch
from mtrl.launch._local import JobsFailed, command

FAKE = "tests._fake_job"


def _job(tmp_path: Path, name: str, *overrides: str) -> Job:
    return Job(name, tmp_path / name, tuple(overrides), module=FAKE)


def test_command_adds_one_torch_thread_unless_the_job_sets_it(tmp_path: Path) -> None:
    cmd = command(_job(tmp_path, "a", "seed=3"), {"python": "py"})
    assert cmd[:3] == ["py", "-m", FAKE] and "train.torch_threads=1" in cmd
    assert cmd[-2:] == [f"hydra.run.dir={tmp_path / 'a'}", "resume=true"]
    own = command(_job(tmp_path, "b", "train.torch_threads=4"), {})
    assert "train.torch_threads=1" not in own and "train.torch_threads=4" in own


def test_failed_job_is_reported_and_the_others_finish(tmp_path: Path, capsys) -> None:
    jobs = [_job(tmp_path, "ok1", "sleep=0.5"), _job(tmp_path, "bad", "rc=3"), _job(tmp_path, "ok2", "sleep=0.2")]
    with pytest.raises(JobsFailed, match=r"1 of 3 job\(s\) failed: bad \(exit 3\)"):
        launch(jobs, "local", {"n_jobs": 2})
    out = capsys.readouterr().out
    assert "FAILED bad (exit 3)" in out and "fake job ends with status 3" in out
    assert "finished ok1" in out and "finished ok2" in out
    for name, rc in (("ok1", 0), ("bad", 3), ("ok2", 0)):
        assert (tmp_path / name / "argv.txt").exists()
        assert json.loads((tmp_path / name / "launch.jsonl").read_text().splitlines()[-1])["rc"] == rc


def test_all_jobs_finish_and_record_their_attempts(tmp_path: Path, capsys) -> None:
    jobs = [_job(tmp_path, f"j{i}") for i in range(3)]
    launch(jobs, "local", {"n_jobs": 3, "torch_threads": 1})
    launch(jobs[:1], "local", {"n_jobs": 1})  # a second attempt appends a line
    assert "all 3 job(s) finished" in capsys.readouterr().out
    assert len((tmp_path / "j0" / "launch.jsonl").read_text().splitlines()) == 2
    assert len((tmp_path / "j1" / "launch.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("options, match", [({"n_jobs": 0}, "n_jobs"), ({"n_jobs": "x"}, "n_jobs"),
                                            ({"partition": "gpu"}, "unknown local launcher option")])  # fmt: skip
def test_bad_options_are_refused_before_anything_runs(tmp_path: Path, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        launch([_job(tmp_path, "a")], "local", options)
    assert not (tmp_path / "a").exists()
