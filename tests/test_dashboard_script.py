"""scripts/dashboard.sh: a relative --runs is the caller's folder (issue 23 item 9), as with
`contrastscope dashboard`; the script runs from a stand-in clone whose python records what it is given."""

import os
import shutil
import subprocess

from browser import REPO


def run_script(tmp_path, *args) -> list[str]:
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True, exist_ok=True)
    (clone / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "scripts" / "dashboard.sh", clone / "scripts" / "dashboard.sh")
    (clone / "scripts" / "setup.sh").write_text("exit 0\n")  # the set-up is not what this test is about
    record = tmp_path / "argv"
    python = clone / ".venv" / "bin" / "python"
    python.write_text(f'#!/usr/bin/env bash\nprintf \'%s\\n\' "$PWD" "$@" > {record}\n')
    python.chmod(0o755)
    caller = tmp_path / "elsewhere"
    (caller / "myruns").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["bash", str(clone / "scripts" / "dashboard.sh"), *args], cwd=caller, check=True, env={**os.environ}, timeout=30
    )
    return record.read_text().splitlines()


def test_relative_runs_resolve_against_the_callers_folder(tmp_path):
    lines = run_script(tmp_path, "--runs", "myruns")
    assert lines[0] == str(tmp_path / "clone")  # the app runs from the clone
    assert lines[-2:] == ["--runs", str(tmp_path / "elsewhere" / "myruns")]
    assert run_script(tmp_path, "--runs=myruns")[-1] == str(tmp_path / "elsewhere" / "myruns")


def test_absolute_paths_urls_and_other_arguments_pass_through(tmp_path):
    assert run_script(tmp_path, "--runs", "/data/runs", "--x")[-3:] == ["--runs", "/data/runs", "--x"]
    assert run_script(tmp_path, "--runs", "s3://bucket/runs")[-1] == "s3://bucket/runs"
    assert run_script(tmp_path)[1:] == ["-m", "streamlit", "run", "app.py"]
