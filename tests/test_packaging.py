"""Packaging rules (pyproject.toml says why): names in pyproject, versions in constraints.txt,
requirements.txt installs every declared name; the product package imports no test or bench code."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("include/carefabric", "include/carefabric_airflow", "dags", "plugins")
# Test data, measures and their reference libraries: none of them ships in the product.
NOT_PRODUCT = {"sandbox", "carefabric_bench", "pytest", "hl7apy", "hl7"}
# Modules allowed to re-export non-product code from the product package (none since the bench move).
SHIMS: set[str] = set()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0])


def _lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def _declared() -> dict[str, str]:
    """Every requirement string of pyproject (product and extras), by normalised name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        found.extend(r for r in extra if _name(r) != "carefabric")
    return {_name(r): r for r in found}


def test_pyproject_names_dependencies_and_constraints_pin_each_once() -> None:
    declared = _declared()
    versioned = sorted(r for r in declared.values() if re.search(r"[<>=!~]", r))
    assert not versioned, f"versions belong in constraints.txt, not pyproject.toml: {versioned}"
    pins: dict[str, list[str]] = {}
    for line in _lines(ROOT / "constraints.txt"):
        name, _, version = line.partition("==")
        assert version, f"constraints.txt pins exact versions only: {line!r}"
        pins.setdefault(_norm(name), []).append(version)
    twice = sorted(n for n, v in pins.items() if len(v) > 1)
    assert not twice, f"pinned more than once in constraints.txt: {twice}"
    unpinned = sorted(set(declared) - set(pins))
    assert not unpinned, f"declared in pyproject.toml but not pinned in constraints.txt: {unpinned}"


def test_requirements_install_exactly_what_pyproject_declares() -> None:
    lines = _lines(ROOT / "requirements.txt")
    versioned = [line for line in lines if re.search(r"[<>=!~]", line)]
    assert not versioned, f"requirements.txt names packages; their versions live in constraints.txt: {versioned}"
    named = {_name(line) for line in lines}
    declared = set(_declared())
    assert named - declared == set(), f"in requirements.txt, not declared in pyproject.toml: {sorted(named - declared)}"
    assert declared - named == set(), f"declared in pyproject.toml, not in requirements.txt: {sorted(declared - named)}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_product_code_imports_no_test_data_bench_or_test_library() -> None:
    offenders = {}
    for folder in PRODUCT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            bad = _imports(path) & NOT_PRODUCT
            if bad and relative not in SHIMS:
                offenders[relative] = sorted(bad)
    assert offenders == {}


def test_image_installs_the_product_dependencies_only() -> None:
    """The production image takes pyproject's [project].dependencies, never requirements.txt (whose
    test, bench, lint and sandbox extras have no place in production)."""
    instructions = [line for line in (ROOT / "Dockerfile").read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    text = "\n".join(instructions)
    assert not re.search(r"(?<![-\w])requirements\.txt", text), "the image installs requirements.txt (dev tools)"
    assert "['project']['dependencies']" in text and "-c /opt/carefabric/constraints.txt" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev_only = {_name(r) for extra in project["optional-dependencies"].values() for r in extra} - {
        _name(r) for r in project["dependencies"]} - {"carefabric"}
    named = {_name(w) for w in re.findall(r"[A-Za-z][\w.\-]+", text)}
    assert not dev_only & named, f"the image names dev-only packages: {sorted(dev_only & named)}"
