"""`make lab`: JupyterLab at the project root on .venv's kernel; notebooks stripped on commit.

The server tests start JupyterLab with the command `make lab` runs (read from `make -n`), on a
free loopback port, serving a copy of notebooks/ under tmp_path; the kernel it starts writes only
under tmp_path. The server is stopped by its PID, then the kernel by its own if still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nbformat
import papermill
import psutil
import pytest

from lib.core.layout import Layout
from lib.core.params import Params, load_params
from lib.core.paths import NOTEBOOKS_DIR, PARAMS_DIR, PROJECT_ROOT
from lib.run.stages import STAGES, get_stage
from tests.conftest import dirs_overrides

ROOT = PROJECT_ROOT
STAMP = ".venv/.quire-installed"  # the Makefile's $(STAMP): `make -o` keeps .venv as it is
STAGE_NOTEBOOKS = [s.notebook for s in STAGES]
IS_ROOT = os.geteuid() == 0


# --- what `make lab` runs ----------------------------------------------------------------------


@functools.cache
def make_dry_run(*args: str) -> tuple[str, ...]:
    """The shell commands make would run for ``args`` (nothing runs), one per logical line."""
    # Variables given to an outer make (make test ARGS=...) must not reach this one.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "-n", "-s", "-o", STAMP, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return tuple(line.strip() for line in out.replace("\\\n", " ").splitlines() if line.strip())


def command(lines: tuple[str, ...], marker: str) -> list[str]:
    """The one command among ``lines`` containing ``marker``, split into its arguments."""
    found = [line for line in lines if marker in line]
    assert len(found) == 1, f"expected one command with {marker!r} in {lines}"
    return shlex.split(found[0])


def lab_command(lines: tuple[str, ...]) -> list[str]:
    """The JupyterLab command line of `make lab`'s `quire lab ...` (``--print-command`` shows it).

    Its first item is the jupyter beside the Python running quire (.venv's, under make).
    """
    quire = command(lines, "quire lab")
    assert quire[0] == ".venv/bin/quire", quire
    shown = subprocess.run(
        [sys.executable, "-m", "lib.cli", *quire[1:], "--print-command"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return shlex.split(shown)


def option(argv: list[str], name: str) -> str:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {argv}")


def committed_kernelspec() -> dict[str, str]:
    """The kernelspec every stage notebook is committed with (they all agree)."""
    specs = {
        json.dumps(nbformat.read(NOTEBOOKS_DIR / name, as_version=4).metadata.kernelspec)
        for name in STAGE_NOTEBOOKS
    }
    assert len(specs) == 1, specs
    return json.loads(specs.pop())


def test_make_lab_opens_jupyterlab_at_the_project_root_on_loopback():
    lines = make_dry_run("lab", "LAB_PORT=8123")
    lab = lab_command(lines)
    assert lab[0] == str(Path(sys.executable).with_name("jupyter")) and lab[1] == "lab"
    assert option(lab, "--ip") == "127.0.0.1"
    assert option(lab, "--port") == "8123"
    assert option(lab, "--ServerApp.root_dir") == str(ROOT)
    assert ("--allow-root" in lab) is IS_ROOT
    assert option(lab_command(make_dry_run("lab")), "--port") == "8888"


def test_make_lab_installs_the_kernel_papermill_runs_the_notebooks_with():
    lines = make_dry_run("lab")
    install = command(lines, "ipykernel install")
    assert install[0] == ".venv/bin/python" and "--sys-prefix" in install
    # run_all (papermill) and JupyterLab must resolve the same kernel name to .venv's Python.
    kernels = (ROOT / "lib" / "run" / "kernels.py").read_text()
    assert set(re.findall(r'^KERNEL = "([^"]+)"', kernels, re.M)) == {option(install, "--name")}
    spec = committed_kernelspec()
    assert option(install, "--name") == spec["name"]
    # The same display name as committed: saving from JupyterLab leaves the metadata alone.
    assert option(install, "--display-name") == spec["display_name"]
    # ... and the git filter is set up before JupyterLab starts.
    assert any(line.startswith("git config filter.nbstripout.clean") for line in lines)
    assert lines.index(next(x for x in lines if "quire lab" in x)) == len(lines) - 1


# --- output stripping --------------------------------------------------------------------------


def test_gitattributes_puts_the_notebooks_through_nbstripout():
    paths = [f"notebooks/{name}" for name in STAGE_NOTEBOOKS]
    out = subprocess.run(
        ["git", "check-attr", "filter", "diff", "--", *paths],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for path in paths:
        assert f"{path}: filter: nbstripout" in out
        assert f"{path}: diff: ipynb" in out


def executed_like_jupyterlab_saves(source: Path, dest: Path) -> None:
    """Write ``source`` as JupyterLab saves it after Run All.

    Outputs, execution counts, timing metadata, widget state, the kernel's language_info, and
    JupyterLab's JSON (non-ASCII escaped).
    """
    nb = nbformat.read(source, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for count, cell in enumerate(code, start=1):
        cell.execution_count = count
        cell.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00.000000Z"}
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="ingested rows=2000\n"),
            nbformat.v4.new_output(
                "execute_result", data={"text/plain": "42"}, execution_count=count
            ),
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}),
        ]
    code[-1].outputs.append(
        nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=["boom"])
    )
    nb.metadata["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": "3.11.7",
    }
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_git_filter_stores_notebooks_exactly_as_committed(tmp_path):
    """`make git-filter` in a fresh clone; executed stage notebooks are staged as committed.

    The other notebooks, unchanged, pass through unchanged: else git would show them modified
    as soon as the filter is set up.
    """
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitattributes").write_bytes((ROOT / ".gitattributes").read_bytes())
    committed = {p.name: p.read_bytes() for p in NOTEBOOKS_DIR.glob("*.ipynb")}
    for name, text in committed.items():
        target = tmp_path / "notebooks" / name
        if name in STAGE_NOTEBOOKS:
            executed_like_jupyterlab_saves(NOTEBOOKS_DIR / name, target)
            assert nbformat.read(target, as_version=4).cells[-1].outputs  # outputs to strip
        else:
            target.write_bytes(text)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    subprocess.run(  # the Makefile's git-filter target, configuring the repository in tmp_path
        ["make", "-s", "-o", STAMP, "git-filter"],
        cwd=ROOT, env={**env, "GIT_DIR": str(tmp_path / ".git")}, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["git", "add", "notebooks"], cwd=tmp_path, check=True)
    for name, text in committed.items():
        staged = subprocess.run(
            ["git", "show", f":notebooks/{name}"], cwd=tmp_path, capture_output=True, check=True
        ).stdout
        assert staged == text, f"{name} is not staged as committed"
    # The working copies keep their outputs: stripping happens on the way into git, not on save.
    first = tmp_path / "notebooks" / STAGE_NOTEBOOKS[0]
    assert nbformat.read(first, as_version=4).cells[-1].outputs
    # `git diff` sees the working copies through the same filter: nothing changed.
    diff = subprocess.run(["git", "diff", "--stat"], cwd=tmp_path, capture_output=True, check=True)
    assert diff.stdout == b""


def test_make_strip_removes_outputs_in_place(tmp_path):
    """What `make strip` runs, on a copy of an executed notebook."""
    argv = command(make_dry_run("strip"), "nbstripout")
    assert argv[-1] == "notebooks/*.ipynb"
    copy = tmp_path / "notebooks" / "01_ingest.ipynb"
    executed_like_jupyterlab_saves(NOTEBOOKS_DIR / "01_ingest.ipynb", copy)
    subprocess.run([*argv[:-1], str(copy)], cwd=tmp_path, check=True)
    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert copy.read_bytes() == (NOTEBOOKS_DIR / "01_ingest.ipynb").read_bytes()


# --- a JupyterLab server -----------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab server started by the tests."""

    url: str
    token: str
    root: Path
    work: Path
    kernels: list[psutil.Process] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.auth, timeout=30, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server these tests started: SIGTERM (it shuts its kernels down), then SIGKILL."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def stop_kernel(kernel: psutil.Process) -> None:
    """SIGKILL a kernel the test server started, if the server's shutdown left it running."""
    with contextlib.suppress(psutil.NoSuchProcess):
        # is_running() also checks the creation time: a reused PID is not our kernel.
        if kernel.is_running() and kernel.status() != psutil.STATUS_ZOMBIE:
            kernel.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab as `make lab` starts it, on a copy of notebooks/ and the kernel it installs."""
    work = tmp_path_factory.mktemp("lab")
    root = work / "project"
    (root / "notebooks").mkdir(parents=True)
    for path in NOTEBOOKS_DIR.glob("*.ipynb"):
        (root / "notebooks" / path.name).write_bytes(path.read_bytes())
    lines = make_dry_run("lab", f"LAB_PORT={free_port()}")
    # The kernelspec `make lab` installs into .venv, installed into a prefix of our own that the
    # server searches first (JUPYTER_PATH), so the kernel the tests use is the one it writes.
    install = command(lines, "ipykernel install")
    install[install.index("--sys-prefix")] = f"--prefix={work / 'prefix'}"
    subprocess.run([str(ROOT / install[0]), *install[1:]], check=True, capture_output=True)
    token = secrets.token_hex(16)
    argv = lab_command(lines)
    argv[argv.index(f"--ServerApp.root_dir={ROOT}")] = f"--ServerApp.root_dir={root}"
    argv += ["--no-browser", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    env = {
        **os.environ,
        "JUPYTER_PATH": str(work / "prefix" / "share" / "jupyter"),
        # Nothing of the user's Jupyter or IPython set-up is read or written.
        "JUPYTER_CONFIG_DIR": str(work / "config"),
        "JUPYTER_DATA_DIR": str(work / "data"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "IPYTHONDIR": str(work / "ipython"),
        "OMP_NUM_THREADS": "1",
    }
    log = (work / "jupyterlab.log").open("wb")
    server = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{option(argv, '--port')}"
    running = Lab(url, token, root, work)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (work / "jupyterlab.log").read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if running.get("/api/status").status_code == 200:
                    break
            assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
            time.sleep(0.5)
        yield running
    finally:
        stop(server)
        log.close()
        for kernel in running.kernels:  # normally shut down with the server already
            stop_kernel(kernel)


@pytest.mark.slow
def test_lab_page_answers_with_the_token_only(lab):
    page = lab.get("/lab")
    assert page.status_code == 200
    assert "<title>JupyterLab</title>" in page.text
    anonymous = httpx.get(lab.url + "/lab", timeout=30)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["location"]


@pytest.mark.slow
def test_contents_api_lists_the_stage_notebooks(lab):
    listing = lab.get("/api/contents/notebooks")
    assert listing.status_code == 200
    notebooks = {e["name"] for e in listing.json()["content"] if e["type"] == "notebook"}
    assert set(STAGE_NOTEBOOKS) <= notebooks
    assert [n for n in STAGE_NOTEBOOKS if n[:2].isdigit()] == [
        "01_ingest.ipynb", "02_train.ipynb", "03_evaluate.ipynb", "04_monitor.ipynb",
    ]  # fmt: skip


@pytest.mark.slow
def test_kernelspecs_api_serves_the_kernel_make_lab_installs(lab):
    specs = lab.get("/api/kernelspecs").json()
    spec = committed_kernelspec()
    assert specs["default"] == spec["name"]
    served = specs["kernelspecs"][spec["name"]]["spec"]
    assert served["display_name"] == spec["display_name"]
    # Installed with the project's interpreter, not a bare "python" looked up on PATH.
    assert os.path.samefile(Path(served["argv"][0]).parents[1], sys.prefix)


# --- running a notebook through the server's kernel --------------------------------------------


def ingest_params(root: Path) -> Params:
    """The CI preset (tiny sizes) writing under ``root``, as the notebook tests use it."""
    return load_params([PARAMS_DIR / "ci.yaml"], dirs_overrides(root))


def execute_request(code: str, session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": "test",
            "session": session,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


async def run_cells(ws_url: str, token: str, sources: list[str]) -> list[list[dict[str, Any]]]:
    """Execute ``sources`` in order on the kernel behind ``ws_url``; return each cell's outputs.

    Fails on the first cell that raises, with its error.
    """
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(ws_url, headers={"Authorization": f"token {token}"})
    conn = await websocket_connect(request, max_message_size=256 * 2**20)
    session = uuid.uuid4().hex
    results = []
    try:
        for index, code in enumerate(sources):
            message = execute_request(code, session)
            msg_id = message["header"]["msg_id"]
            await conn.write_message(json.dumps(message))
            outputs: list[dict[str, Any]] = []
            reply: dict[str, Any] | None = None
            idle = False
            while reply is None or not idle:
                raw = await asyncio.wait_for(conn.read_message(), timeout=180)
                assert raw is not None, f"websocket closed while running cell {index}"
                if isinstance(raw, bytes):  # binary frames carry buffers (widgets): not ours
                    continue
                msg = json.loads(raw)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                if kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
                elif kind in ("stream", "execute_result", "display_data", "error"):
                    outputs.append({"output_type": kind, **msg["content"]})
            if reply["status"] != "ok":
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply.get("traceback", [])))
                pytest.fail(f"cell {index} raised {reply['ename']}: {reply['evalue']}\n{trace}")
            results.append(outputs)
    finally:
        conn.close()
    return results


def text_of(outputs: list[dict[str, Any]]) -> str:
    parts = [o.get("text", "") for o in outputs]
    parts += [o.get("data", {}).get("text/markdown", "") for o in outputs]
    parts += [o.get("data", {}).get("text/plain", "") for o in outputs]
    return "\n".join(parts)


@pytest.mark.slow
def test_ingest_notebook_runs_in_a_kernel_started_by_jupyterlab(lab):
    """Open notebooks/01_ingest.ipynb as JupyterLab does and run its cells through the server.

    The parameters are the CI preset's, injected after the parameters cell as papermill does.
    """
    created = httpx.post(
        lab.url + "/api/sessions",
        headers=lab.auth,
        json={
            "path": "notebooks/01_ingest.ipynb",
            "name": "01_ingest.ipynb",
            "type": "notebook",
            "kernel": {"name": committed_kernelspec()["name"]},
        },
        timeout=60,
    )
    assert created.status_code == 201, created.text
    session = created.json()
    kernel_id = session["kernel"]["id"]
    try:
        assert kernel_id in {k["id"] for k in lab.get("/api/kernels").json()}
        ws_url = lab.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        probe = (
            "import json, os, sys\n"
            "from lib.core.paths import PROJECT_ROOT, resolve\n"
            "print(json.dumps({'pid': os.getpid(), 'cwd': os.getcwd(), 'prefix': sys.prefix,"
            " 'data': str(resolve('data')), 'root': str(PROJECT_ROOT)}))"
        )
        (out,) = asyncio.run(run_cells(ws_url, lab.token, [probe]))
        facts = json.loads(out[0]["text"])
        lab.kernels.append(psutil.Process(facts["pid"]))
        assert os.path.samefile(facts["cwd"], lab.root / "notebooks")  # the notebook's folder
        assert os.path.samefile(facts["prefix"], sys.prefix)  # the project's .venv, as run_all's
        # The defaults' relative folders are the project's, whatever the kernel's cwd.
        assert facts["data"] == str(ROOT / "data") and facts["root"] == str(ROOT)

        params = ingest_params(lab.work / "nb")
        nb = papermill.parameterize.parameterize_notebook(
            papermill.iorw.load_notebook_node(str(lab.root / "notebooks" / "01_ingest.ipynb")),
            params.section_dicts(get_stage("ingest").sections),
        )
        sources = [c.source for c in nb.cells if c.cell_type == "code"]
        started = time.perf_counter()
        outputs = asyncio.run(run_cells(ws_url, lab.token, sources))
        print(f"01_ingest ran in {time.perf_counter() - started:.1f} s in the lab kernel")
    finally:
        deleted = httpx.delete(
            lab.url + f"/api/sessions/{session['id']}", headers=lab.auth, timeout=60
        )
    assert deleted.status_code == 204
    assert "Gate passed" in text_of(outputs[-1])

    from lib.data.ingest import run_ingest

    # The same parameters through lib, in this process, into another folder.
    direct = run_ingest(ingest_params(lab.work / "direct")).manifest.as_json()
    manifest = json.loads((Layout.of(params).processed / "manifest.json").read_text())
    assert manifest["rows"] == direct["rows"] > 0
    for split in ("train", "validation", "test"):
        assert manifest["splits"][split]["rows"] == direct["splits"][split]["rows"]
        assert manifest["splits"][split]["sha256"] == direct["splits"][split]["sha256"]
    assert f"**{manifest['rows']:,} rows**" in "".join(map(text_of, outputs))
