"""`--readme`: a benchmark writes what it prints into its own section of bench/README.md
(between its markers), and says which file and which marker is wrong when it cannot."""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline.bench_report import MarkerError, add_readme_option, readme_section, replace_section, write_section

ROOT = Path(__file__).resolve().parents[2]
README = """# Benchmarks

## Speed (`bench/speed.py`)

How to run it; prose stays.

<!-- bench:speed -->
| old | table |
|---|---|
<!-- /bench:speed -->

Reading it: prose stays too.

<!-- bench:other -->
untouched
<!-- /bench:other -->
"""


def test_replaces_only_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    write_section(readme, "speed", "machine: x\n\n| new | table |\n|---|---|\n| 1 | 2 |\n")
    text = readme.read_text()
    assert "| old | table |" not in text
    assert "<!-- bench:speed -->\nmachine: x\n\n| new | table |\n|---|---|\n| 1 | 2 |\n<!-- /bench:speed -->" in text
    assert text.replace("machine: x\n\n| new | table |\n|---|---|\n| 1 | 2 |", "| old | table |\n|---|---|") == README
    write_section(readme, "speed", "again")  # the markers stay, so it can be rewritten
    assert "<!-- bench:speed -->\nagain\n<!-- /bench:speed -->" in readme.read_text()


@pytest.mark.parametrize("text, says", [
    (README.replace("<!-- bench:speed -->\n", ""), "marker <!-- bench:speed --> is missing"),
    (README.replace("<!-- /bench:speed -->\n", ""), "marker <!-- /bench:speed --> is missing"),
    (README + "<!-- bench:speed -->\n", "marker <!-- bench:speed --> appears 2 times"),
    (README.replace("<!-- bench:speed -->", "@").replace("<!-- /bench:speed -->", "<!-- bench:speed -->").replace("@", "<!-- /bench:speed -->"),
     "marker <!-- /bench:speed --> comes before <!-- bench:speed -->"),
])
def test_bad_markers_name_the_file_and_the_marker(tmp_path, text, says):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(MarkerError, match=f"^{readme}: {says}"):
        write_section(readme, "speed", "new")
    assert readme.read_text() == text  # nothing written
    with pytest.raises(MarkerError, match="no such file"):
        write_section(tmp_path / "missing.md", "speed", "new")


def test_a_script_writes_what_it_prints_and_checks_the_markers_before_running(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    script = str(tmp_path / "speed.py")  # a bench script is named by its file
    ap = argparse.ArgumentParser()
    add_readme_option(ap, script)
    assert ap.parse_args([]).readme is None
    assert ap.parse_args(["--readme"]).readme == str(tmp_path / "README.md")  # beside the script
    with readme_section(str(readme), script):
        print("| fresh | table |")
        print("progress", file=sys.stderr)  # stderr is progress, not the section
    assert "| fresh | table |" in capsys.readouterr().out  # still printed
    assert "<!-- bench:speed -->\n| fresh | table |\n<!-- /bench:speed -->" in readme.read_text()
    ran = []
    with pytest.raises(SystemExit, match=f"error: {readme}: marker <!-- bench:slow --> is missing"):
        with readme_section(str(readme), str(tmp_path / "slow.py")):
            ran.append(True)
    assert not ran  # a missing section stops the script before the benchmark runs
    readme.write_text(readme.read_text() + "<!-- bench:speed-large -->\n<!-- /bench:speed-large -->\n")
    with readme_section(str(readme), script, "large"):
        print("| large | table |")
    assert "<!-- bench:speed-large -->\n| large | table |\n<!-- /bench:speed-large -->" in readme.read_text()
    assert "<!-- bench:speed -->\n| fresh | table |\n<!-- /bench:speed -->" in readme.read_text()  # the other kept
    assert replace_section("<!-- bench:a -->\n<!-- /bench:a -->", "a", "x") == "<!-- bench:a -->\nx\n<!-- /bench:a -->"


def test_every_bench_script_has_its_section_in_bench_readme():
    text = (ROOT / "bench" / "README.md").read_text()
    for script in sorted((ROOT / "bench").glob("*.py")):
        replace_section(text, script.stem, "", "bench/README.md")  # raises naming the missing marker


def test_bench_scripts_import_only_installed_packages():
    """No sys.path edits and no imports of sibling bench scripts: a script (or a documented
    `python DIR/X.py` entry point) starts from any
    directory with the project installed (`python bench/X.py --help` imports everything;
    too slow for the suite with torch and Ray: this checks what makes it work)."""
    installed = {p.rstrip("*") for p in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]}
    first_party = installed | {"bench", "tests"}
    entry_scripts = [ROOT / "pipeline" / "build_dataset.py", ROOT / "train" / "stage.py", ROOT / "train" / "sample.py"]
    for script in sorted((ROOT / "bench").glob("*.py")) + entry_scripts:
        tree = ast.parse(script.read_text())
        assert "sys.path" not in script.read_text(), script.name
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in first_party:
                assert node.module.split(".")[0] in installed, f"{script.name} imports {node.module}: give it a home in an installed package"
                path = ROOT.joinpath(*node.module.split("."))
                path = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
                assert path.is_file(), f"{script.name}: no module {node.module}"
                defined = _top_level_names(path)
                for alias in node.names:
                    assert alias.name in defined or (path.parent / f"{alias.name}.py").is_file(), \
                        f"{script.name}: {node.module} has no {alias.name}"


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names
