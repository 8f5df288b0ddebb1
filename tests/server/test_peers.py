"""The folder the workers of one server share: who runs, reload requests and their answers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server.peers import Peers


@pytest.fixture
def other(tmp_path):
    """A second worker's view of the folder, under the pid of a real running process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    peers = Peers(tmp_path)
    peers.pid = proc.pid
    yield peers
    proc.kill()
    proc.wait()


def test_alive_lists_running_workers_and_forgets_dead_ones(tmp_path, other):
    me = Peers(tmp_path)
    me.join()
    other.join()
    (tmp_path / "workers" / "999999999").touch()  # a worker that died without leaving
    assert me.alive() == sorted([me.pid, other.pid])
    assert not (tmp_path / "workers" / "999999999").exists()
    other.leave()
    assert me.alive() == [me.pid]


def test_a_reload_reaches_the_other_worker_once_and_its_answer_comes_back(tmp_path, other):
    me = Peers(tmp_path)
    me.join()
    other.join()
    assert other.pending() is None
    generation = me.announce("7")
    assert me.pending() is None  # the worker that asked has reloaded already
    assert other.pending() == generation
    assert other.pending() is None  # followed once
    assert me.wait_acks(generation, 0.2) == ([], [other.pid])  # not answered yet
    other.ack(generation, False, None, "ModelNotFoundError: gone")
    acks, late = me.wait_acks(generation, 5)
    assert late == [] and [(a.pid, a.ok, a.error) for a in acks] == [
        (other.pid, False, "ModelNotFoundError: gone")
    ]
    assert me.wait_acks(me.announce("8"), 0.2)[1] == [other.pid]  # an old answer is not one


def test_a_worker_that_joins_later_does_not_follow_an_old_reload(tmp_path, other):
    me = Peers(tmp_path)
    me.join()
    me.announce("7")
    other.join()  # started after it: it loaded the champion itself
    assert other.pending() is None
