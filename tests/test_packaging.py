"""Set-up files agree with each other: pyproject, requirements.lock, environment.yml, .env.example."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

import yaml
from packaging.requirements import Requirement

from lib.core.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[norm(name)] = version.strip()
    return pins


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def conda_pip_requirements() -> list[Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return [Requirement(r) for r in pip]


def test_every_dependency_is_pinned_in_the_lock_within_its_range():
    pins = lock()
    for req in pyproject_requirements():
        assert norm(req.name) in pins, f"{req.name} missing from requirements.lock (make lock)"
        assert req.specifier.contains(pins[norm(req.name)]), (
            f"{req.name}=={pins[norm(req.name)]} vs {req.specifier}"
        )


def lock_conflicts(pins: dict[str, str]) -> list[str]:
    """Requirements of the locked set (with the extras asked for) that its own pins break.

    Walks the dependency closure from pyproject through the installed packages' metadata,
    so a lock edited by hand (a pin outside a transitive range) fails here, offline, rather
    than in pip's resolver on a fresh machine.
    """
    from importlib import metadata

    from packaging.version import Version

    wanted = [(r, "") for r in pyproject_requirements()]
    seen: set[tuple[str, str]] = set()
    problems = []
    while wanted:
        req, parent = wanted.pop()
        name = norm(req.name)
        if name not in pins:
            continue  # not installed on this platform: the markers ruled it out
        if not req.specifier.contains(Version(pins[name]), prereleases=True):
            problems.append(f"{parent or 'pyproject'} needs {req}, the lock pins {pins[name]}")
        for extra in sorted(req.extras) or [""]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            try:
                requires = metadata.requires(req.name) or []
            except metadata.PackageNotFoundError:
                continue
            for text in requires:
                sub = Requirement(text)
                env = {"extra": extra}
                if sub.marker is None or sub.marker.evaluate(env):
                    if sub.marker is not None and "extra" in str(sub.marker) and not extra:
                        continue
                    wanted.append((sub, f"{req.name}[{extra}]" if extra else req.name))
    return problems


def test_the_lock_satisfies_every_transitive_requirement():
    assert lock_conflicts(lock()) == []


def test_the_lock_check_sees_a_pin_outside_a_transitive_range():
    pins = lock()
    pins["greenlet"] = "99.0"  # tritonclient[http] caps greenlet; gevent needs it
    assert any("greenlet" in p for p in lock_conflicts(pins))


def test_environment_yml_has_the_same_packages_and_pins():
    ours = {norm(r.name): r for r in pyproject_requirements()}
    theirs = {norm(r.name): r for r in conda_pip_requirements()}
    assert set(theirs) == set(ours)
    pins = lock()
    for name, req in theirs.items():
        assert str(req.specifier) == f"=={pins[name]}", name
        assert req.extras == ours[name].extras, name


def test_python_version_agrees():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"


def test_env_example_lists_every_variable_the_code_reads():
    example = (ROOT / ".env.example").read_text()
    sources = [p for d in ("lib", "server") for p in (ROOT / d).rglob("*.py")] + [
        ROOT / "run_all.py"
    ]
    pattern = re.compile(
        r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]+)["']"""
    )
    read = {name for path in sources for name in pattern.findall(path.read_text())}
    read |= {"QUIRE__"}  # the params prefix (lib/core/params.py ENV_PREFIX)
    read -= {"PYTHONPATH"}  # Python's own: Quire puts the project first on it (lib/core/env.py)
    for name in read:
        assert name in example, f"{name} is read by the code but not documented in .env.example"


def test_make_help_lists_the_targets():
    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for target in ("run", "test", "lint", "install", "lock", "bench"):
        assert re.search(rf"make {target}\s+\S", out), target


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("\n## ", readme.index("make test"))]
    assert "make run" in head and "make test" in head
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test" in ci


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported by lib/, server/ and run_all.py (function-level too) → files."""
    import ast
    import sys

    own = {"lib", "server", "tests"}
    found: dict[str, set[str]] = {}
    sources = [p for d in ("lib", "server") for p in (ROOT / d).rglob("*.py")] + [
        ROOT / "run_all.py"
    ]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in own and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared():
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {norm(Requirement(r).name) for r in project["dependencies"]}
    dists = packages_distributions()
    undeclared = []
    for module, files in sorted(third_party_imports().items()):
        names = {norm(d) for d in dists.get(module, [])}
        assert names, f"{module} (imported by {sorted(files)[0]}) is not installed"
        if not names & runtime:
            undeclared.append(f"{'/'.join(sorted(names))} (import {module}: {sorted(files)[0]})")
    assert not undeclared, (
        "imported by lib/, server/ or run_all.py but not in [project.dependencies] of "
        "pyproject.toml (add it there, to environment.yml and requirements.lock):\n  "
        + "\n  ".join(undeclared)
    )


def test_the_import_scan_sees_function_level_imports():
    imports = third_party_imports()
    # lib/run/execute.py imports papermill inside run_stage, and psutil inside a helper
    assert "lib/run/execute.py" in imports["papermill"]
    assert "lib/run/execute.py" in imports["psutil"]
    assert "lib" not in imports and "os" not in imports


def test_make_targets_call_the_quire_command():
    from typer.main import get_command

    from lib.cli import app

    commands = get_command(app).commands  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    targets = {"run": "run", "serve": "serve", "dashboard": "dashboard", "demo": "demo",
               "mlflow-ui": "mlflow-ui", "lab": "lab"}  # fmt: skip
    for target, command in targets.items():
        out = subprocess.run(
            ["make", "-n", "-s", "-o", ".venv/.quire-installed", target, "ARGS=--params x.yaml"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        line = out.strip().splitlines()[-1].split()
        assert line[:2] == [".venv/bin/quire", command], (target, out)
        assert command in commands and line[-2:] == ["--params", "x.yaml"], (target, out)
