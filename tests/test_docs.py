"""The docs run: every Python block of the README executes as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_blocks():
    assert python_blocks(), "the README lost its Python example"


@pytest.mark.slow  # loads the models
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_a_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # "me.jpg" and friends: not there, so their readings say so instead of failing
    exec(compile(python_blocks()[index], f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip()  # it printed what it promised
