"""``.ci/run`` runs the README's developer commands, in a virtual environment of its own."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _developer_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### For developers"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_ci_runs_the_readme_developer_commands_in_its_own_venv():
    commands = _developer_commands()
    script = (REPO / ".ci" / "run").read_text()
    assert commands[0] == "python3 -m venv .venv && . .venv/bin/activate"
    assert '-m venv .venv' in script and "source .venv/bin/activate" in script
    for cmd in commands[1:]:
        if "--index-url" in cmd:  # PyTorch's CPU index: only with TORCH_INDEX_URL (CI's pip has the wheel locally)
            assert cmd.replace("https://download.pytorch.org/whl/cpu", '"$TORCH_INDEX_URL"') in script
        else:
            assert cmd in script, cmd
    assert script.index("pip install torch==2.13.0 -e") < script.index("python -m pytest -q")


def test_the_venv_is_ignored():
    assert "/.venv/" in (REPO / ".gitignore").read_text().splitlines()
