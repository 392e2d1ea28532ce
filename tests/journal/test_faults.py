"""Bad directories, the exclusive lock, failed fsync and a full file system."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from shardex.errors import JournalError
from shardex.journal import Journal, JournalFailedError, JournalLockedError

from .helpers import check_batches, make_batch

HOLDER = textwrap.dedent(
    """
    import sys
    from shardex.journal import Journal
    j = Journal(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
    j.close()
    """
)


def start_holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_with_holder_pid(tmp_path):
    proc = start_holder(tmp_path)
    try:
        with pytest.raises(JournalLockedError, match=f"locked by process {proc.pid}") as err:
            Journal(tmp_path)
        assert err.value.pid == proc.pid
    finally:
        proc.communicate("\n", timeout=30)
    with Journal(tmp_path) as j:  # released on close
        j.append(make_batch(1, 1))


def test_lock_released_when_holder_is_killed(tmp_path):
    proc = start_holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stdin.close()
    with Journal(tmp_path):
        pass


def test_same_process_cannot_open_twice(tmp_path):
    with Journal(tmp_path):
        with pytest.raises(JournalLockedError, match=f"process {os.getpid()}"):
            Journal(tmp_path)


def test_missing_directory_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "journal"
    with Journal(path) as j:
        j.append(make_batch(1, 2))
    assert (path / "00000000000000000001.wal").exists()


def test_directory_blocked_by_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalError, match="cannot create journal directory"):
        Journal(tmp_path / "file" / "journal")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(JournalError, match="not writable"):
            Journal(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_too_little_free_space_refused_at_open(tmp_path):
    with pytest.raises(JournalError, match="bytes free"):
        Journal(tmp_path, min_free_bytes=1 << 62)


def test_failed_fsync_stops_appends(tmp_path):
    fail = {"on": False}

    def fsync(fd):
        if fail["on"]:
            raise OSError(5, "Input/output error")
        os.fdatasync(fd)

    j = Journal(tmp_path, fsync=fsync)
    assert j.append(make_batch(1, 4)) == 4
    fail["on"] = True
    with pytest.raises(JournalFailedError, match="fsync failed .* refuses further appends"):
        j.append(make_batch(5, 4))
    assert j.failed and j.durable_seq == 4
    fail["on"] = False  # even if the disk "recovers", a failed journal stays failed
    for _ in range(2):
        with pytest.raises(JournalFailedError, match="earlier failure"):
            j.append(make_batch(5, 4))
    with pytest.raises(JournalFailedError):
        j.sync()
    j.close()  # releases the lock without syncing
    with Journal(tmp_path) as j2:
        # the unacknowledged batch may or may not be there; the acknowledged one is
        assert j2.next_seq in (5, 9)
        assert check_batches(j2.read(), 1) == j2.next_seq


def test_failed_fsync_in_interval_thread_surfaces_on_next_append(tmp_path):
    fail = {"on": False}

    def fsync(fd):
        if fail["on"]:
            raise OSError(28, "No space left on device")
        os.fdatasync(fd)

    with Journal(tmp_path, fsync_policy="interval:1", fsync=fsync) as j:
        fail["on"] = True
        j.append(make_batch(1, 1))
        j._flusher.join(timeout=10)  # the thread exits once the journal failed
        assert j.failed
        with pytest.raises(JournalFailedError):
            j.append(make_batch(2, 1))


FILL = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from helpers import make_batch
    from shardex.journal import Journal, JournalFailedError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    j = Journal(sys.argv[1], segment_bytes=1 << 20)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
    seq = 1
    try:
        while True:
            j.append(make_batch(seq, 100))
            seq += 100
            print(seq - 1, flush=True)
    except JournalFailedError as exc:
        print("failed", exc, flush=True)
    try:
        j.append(make_batch(seq, 1))
    except JournalFailedError:
        print("still failed", flush=True)
    """
)


def test_full_file_system_stops_appends_and_reopen_cuts_partial_record(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", FILL, str(tmp_path), os.path.dirname(__file__)], capture_output=True, text=True, timeout=60
    )
    lines = out.stdout.splitlines()
    assert lines[-1] == "still failed", out.stdout + out.stderr
    assert lines[-2].startswith("failed") and "write failed at byte offset" in lines[-2]
    acked = int(lines[-3])
    with Journal(tmp_path, segment_bytes=1 << 20) as j:
        assert j.torn_tail is not None  # the partial record written before EFBIG
        assert j.next_seq == acked + 1
        assert check_batches(j.read(), 1) == acked + 1
