"""The README's first code block holds the newcomer's two commands (run, test), and
``.ci/run`` runs the second one exactly, failing on any error (pytest's "no tests" exit
code 5 included)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def readme_lines() -> list[str]:
    """The two set-up lines: the first fenced code block of the README, which must come
    before any other text but the title (so it renders as code, first thing)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0].startswith("# "), "the README starts with its title"
    body = [line for line in lines[1:] if line.strip()]
    assert body[0].startswith("```"), "the set-up code block comes right after the title"
    fence = lines.index(body[0])
    end = lines.index("```", fence + 1)
    return lines[fence + 1 : end]


def test_readme_starts_with_the_run_and_the_test_command() -> None:
    assert len(readme_lines()) == 2, "the set-up block holds exactly the two commands"
    run_line, test_line = readme_lines()
    assert run_line.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert run_line.endswith(".venv/bin/lts run")
    assert test_line == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    )


def test_ci_script_runs_exactly_the_readme_test_command() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    test_line = readme_lines()[1]
    command_lines = [line for line in text.splitlines() if "python3 -m venv" in line]
    assert len(command_lines) == 1 and command_lines[0].startswith(test_line + ' "$@"')
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_ci_script_fails_when_pytest_collects_nothing(tmp_path: Path) -> None:
    """Run the real script against a tiny project whose venv already exists (no network):
    pytest finds no tests -> exit 5 -> the script fails."""
    project = tmp_path / "proj"
    (project / ".ci").mkdir(parents=True)
    (project / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    (project / ".ci" / "run").chmod(0o755)
    # A stand-in venv: pip succeeds and does nothing, python is the real interpreter
    # running the real pytest (on an empty project).
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "pip").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "pip").chmod(0o755)
    python = ROOT / ".venv" / "bin" / "python"
    (bin_dir / "python").symlink_to(python if python.exists() else Path(os.sys.executable))
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['t']\n")
    (project / "t").mkdir()
    # `python3 -m venv .venv` must not rebuild our stand-in: a python3 shim that skips it.
    shim = tmp_path / "shim"
    shim.mkdir()
    real_python3 = subprocess.run(["sh", "-c", "command -v python3"], capture_output=True, text=True).stdout.strip()
    (shim / "python3").write_text(
        f'#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "venv" ]; then exit 0; fi\nexec {real_python3} "$@"\n'
    )
    (shim / "python3").chmod(0o755)
    # No third-party pytest plugins in the inner runs: they only slow them down.
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [str(project / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 5, result.stdout + result.stderr
    assert ".ci/run: pytest collected no tests" in result.stderr
    (project / "t" / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    ok = subprocess.run(
        [str(project / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (project / "t" / "test_bad.py").write_text("def test_bad():\n    assert 1 + 1 == 3\n")
    bad = subprocess.run(
        [str(project / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1
