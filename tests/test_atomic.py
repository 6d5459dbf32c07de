"""Atomic outputs: every file lightmark writes goes through a temporary file renamed over the target, so a
failure in the middle of a write (disk full, crash, Ctrl-C, SIGKILL) leaves the old file intact and - except
after SIGKILL - no temporary file behind."""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lightmark.utils as utils
from lightmark.constants import NUM_LANDMARKS
from lightmark.data import write_image, write_ldmks, write_pts
from lightmark.engine.predict import PredictionResults
from lightmark.errors import ImageError, OutputError
from lightmark.utils import atomic_save_bytes, atomic_write

SRC = Path(utils.__file__).parent
OLD = b"old content that must survive\n"


class _DiskFull:
    """Wraps a real file: the first write that would exceed ``budget`` writes part of its data, then fails."""

    def __init__(self, f, budget: int) -> None:
        self._f, self._budget = f, budget

    def write(self, data):
        if len(data) > self._budget:
            self._f.write(data[: self._budget])
            self._f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


class _FailingOs:
    """Stands for ``os`` inside lightmark.utils: the ``nth`` file opened fills the disk after ``budget`` units."""

    def __init__(self, nth: int = 1, budget: int = 10) -> None:
        self.nth, self.budget, self.opened = nth, budget, 0

    def fdopen(self, fd, *args, **kwargs):
        f = os.fdopen(fd, *args, **kwargs)
        self.opened += 1
        return _DiskFull(f, self.budget) if self.opened == self.nth else f

    def __getattr__(self, name):
        return getattr(os, name)


def _pts() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 50, (NUM_LANDMARKS, 2))


def _tiny_checkpoint(path: Path) -> None:
    from lightmark.models import create_model, save_checkpoint

    save_checkpoint(path, create_model("shufflenetv2_x0_5_heatmap", input_size=64), note="x" * 1000)


def _train_log(path: Path) -> None:
    from lightmark.engine.train import _write_log

    _write_log(path.parent, [{"epoch": 1, "train_loss": 2.0, "val_nme": 5.0}, {"epoch": 2, "train_loss": 1.0}])


def _plot(path: Path) -> None:
    from lightmark.viz import plot_ced

    plot_ced({"model": np.array([1.0, 3.0, 7.0])}, path)


def _png(path: Path) -> None:
    from lightmark.viz import save_png

    save_png(path, np.full((20, 30, 3), 7, np.uint8))


def _submission(path: Path, zip_path: Path | None = None) -> None:
    from lightmark.submission import write_submission

    write_submission(path, ["a.jpg", "b.jpg"], np.ones((2, NUM_LANDMARKS, 2)), zip_path=zip_path)


# name -> (writer(path), which file opened by the writer is the one that fails)
WRITERS = {
    "solution.txt": (_submission, 1),
    "sub.zip": (lambda p: _submission(p.parent / "other.txt", zip_path=p), 2),
    "predictions.json": (
        lambda p: PredictionResults(
            ["a.jpg"], np.ones((1, NUM_LANDMARKS, 2), np.float32), np.array([[9, 9]])
        ).save_json(p),
        1,
    ),
    "last.pt": (_tiny_checkpoint, 1),
    "annotated.jpg": (lambda p: write_image(p, np.full((20, 30, 3), 7, np.uint8)), 1),
    "sample.png": (lambda p: write_image(p, np.full((20, 30, 3), 7, np.uint8)), 1),
    "sheet.png": (_png, 1),
    "ced.png": (_plot, 1),
    "log.csv": (_train_log, 1),
    "curves.png": (_train_log, 2),
    "face.pts": (lambda p: write_pts(p, _pts()), 1),
    "face_ldmks.txt": (lambda p: write_ldmks(p, _pts(), _pts()[:2]), 1),
}


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", list(WRITERS))
def test_failure_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch, name: str) -> None:
    writer, nth = WRITERS[name]
    target = tmp_path / name
    target.write_bytes(OLD)
    before = _listing(tmp_path)
    failing = _FailingOs(nth=nth)
    monkeypatch.setattr(utils, "os", failing)
    with pytest.raises(OutputError, match=re.escape(str(target)) + r": cannot write \(No space left on device\)"):
        writer(target)
    assert failing.opened >= nth
    assert target.read_bytes() == OLD  # untouched
    assert not list(tmp_path.glob(".*.tmp"))  # the partial temporary file was removed
    assert set(_listing(tmp_path)) - {"other.txt", "log.csv"} <= set(before)
    # the same call without the failure replaces the file, and leaves only the file
    monkeypatch.setattr(utils, "os", os)
    writer(target)
    assert target.read_bytes() != OLD and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError])
def test_non_os_errors_inside_the_block_propagate_unchanged(tmp_path: Path, exc: type) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(OLD)
    with pytest.raises(exc):
        with atomic_write(target) as f:
            f.write("half of the new cont")
            raise exc()
    assert target.read_bytes() == OLD and _listing(tmp_path) == ["out.txt"]


def test_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "solution.txt"
    target.write_bytes(OLD)

    class _NoRename(_FailingOs):
        def replace(self, *args):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(utils, "os", _NoRename(nth=0))
    with pytest.raises(OutputError, match=r"solution\.txt: cannot write \(Input/output error\)"):
        atomic_save_bytes(target, b"new")
    assert target.read_bytes() == OLD and _listing(tmp_path) == ["solution.txt"]


def test_target_is_a_folder_or_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match=r"dir: cannot write"):
        atomic_save_bytes(tmp_path / "dir", b"x")
    (tmp_path / "file").write_bytes(OLD)
    with pytest.raises(OutputError, match=r"file/x\.txt: cannot write"):
        atomic_save_bytes(tmp_path / "file" / "x.txt", b"x")
    assert _listing(tmp_path) == ["dir", "file"] and not any((tmp_path / "dir").iterdir())


def test_sigkill_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    """A process killed while writing: the target still holds the old content (a stale temporary file stays,
    it is never mistaken for the output)."""
    target = tmp_path / "solution.txt"
    target.write_bytes(OLD)
    script = textwrap.dedent(
        f"""
        import sys, time
        from lightmark.utils import atomic_write
        with atomic_write({str(target)!r}) as f:
            f.write("new partial content" * 1000)
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == OLD
    stale = list(tmp_path.glob(".solution.txt.*.tmp"))
    assert len(stale) == 1 and stale[0].stat().st_size > 0


def test_new_files_get_the_current_umask_and_the_umask_is_never_touched(tmp_path: Path) -> None:
    """In a fresh process: importing lightmark.utils and writing never call ``os.umask`` (process-wide), and a
    new file gets the umask in force when it is written (one set after the import included)."""
    script = textwrap.dedent(
        f"""
        import os, stat
        os.umask(0o077)
        real_umask = os.umask
        def refuse(*args):
            raise AssertionError("os.umask called")
        os.umask = refuse
        import lightmark.utils as utils
        real_umask(0o027)  # changed after the import
        utils.atomic_save_bytes({str(tmp_path / "new.txt")!r}, b"x")
        print(oct(stat.S_IMODE(os.stat({str(tmp_path / "new.txt")!r}).st_mode)))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == oct(0o666 & ~0o027)  # 0o640: not mkstemp's 0o600, not the import-time umask


def test_replaced_files_keep_their_permissions(tmp_path: Path) -> None:
    (tmp_path / "exec.sh").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "exec.sh").chmod(0o751)
    atomic_save_bytes(tmp_path / "exec.sh", b"#!/bin/sh\necho\n")
    assert stat.S_IMODE((tmp_path / "exec.sh").stat().st_mode) == 0o751
    secret = tmp_path / "secret.txt"
    secret.write_bytes(OLD)
    secret.chmod(0o600)
    with atomic_write(secret) as f:  # the new content is never in a file more open than the old one
        (tmp,) = tmp_path.glob(".secret.txt.*.tmp")
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
        f.write("new")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() == "new"


def test_train_run_folder_cleans_stale_temporary_files(tmp_path: Path) -> None:
    """What a SIGKILL during a checkpoint leaves behind is removed when the run (re)starts."""
    from lightmark.engine.train import TrainConfig, train
    from lightmark.errors import DatasetError

    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    (run / "notes.tmp").write_text("not ours")
    with pytest.raises(DatasetError, match="missing"):  # fails after the run folder is prepared
        train(TrainConfig(train=[str(tmp_path / "missing")], out=str(run), model="shufflenetv2_x0_5_heatmap"))
    assert not stale.exists() and (run / "notes.tmp").exists()


def test_crop_cache_failure_leaves_no_temporary_file(tmp_path: Path) -> None:
    from lightmark.data import load_dataset
    from lightmark.data.training import build_crop_cache

    data = tmp_path / "fs"
    data.mkdir()
    for i in range(3):
        write_image(data / f"{i:06d}.png", (np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8))
        write_ldmks(data / f"{i:06d}_ldmks.txt", np.random.default_rng(i).uniform(16, 48, (NUM_LANDMARKS, 2)))
    png = (data / "000002.png").read_bytes()
    (data / "000002.png").write_bytes(png[: len(png) // 2])  # header fine, pixels truncated
    ds = load_dataset(data, require_landmarks=True)
    cache = tmp_path / "cache"
    with pytest.raises(ImageError, match=r"000002\.png: truncated"):
        build_crop_cache(ds, 112, 3.0, cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


# ------------------------------------------------------------------------------------------ source audit

_WRITE_CALL = re.compile(
    r"(?P<call>np\.savez_compressed|np\.savez|np\.save|torch\.save|\.savefig|cv2\.imwrite|\.write_text|"
    r"\.write_bytes|\.tofile|\.to_csv|\bjson\.dump|\bpickle\.dump|(?<![\w.])open|Image\.save|\bim\.save)"
    r"\((?P<args>[^()]*(?:\([^()]*\)[^()]*)*)\)",
)
_BUFFER_ARG = re.compile(r"(?:^|,)\s*(?:buf|f|fh|out_f|file=f)\s*(?:,|$)")
_WRITE_MODE = re.compile(r"""["'][rb]*[wax][bt+]*["']""")


def _direct_writes(text: str) -> list[tuple[int, str]]:
    found = []
    for m in _WRITE_CALL.finditer(text):
        call, args = m.group("call"), " ".join(m.group("args").split())
        if call == "open" and not _WRITE_MODE.search(args):
            continue  # reading
        if call == "open" or not _BUFFER_ARG.search(args):
            found.append((text.count("\n", 0, m.start()) + 1, f"{call}({args[:60]})"))
    return found


def test_source_has_no_direct_writes() -> None:
    """Every write in the package goes to an in-memory buffer or to the file object of atomic_write."""
    bad = [
        'cv2.imwrite(str(p), img)', 'with open(path, "w") as f:', 'open(p, mode="wb")', 'torch.save(obj, path)',
        'fig.savefig(out / "a.png", dpi=100)', 'np.save(path, arr)', 'np.savez(p, a=x.astype(np.uint8))',
        'path.write_text("x")', 'json.dump(rows, open(p, "w"))', 'im.save(path)',
    ]  # fmt: skip
    good = [
        "torch.save(payload, buf)", 'fig.savefig(buf, format="png")', "json.dump(self.to_dict(), f, indent=1)",
        'np.savez(\n f,\n a=x.astype(np.float16),\n)', 'open(path, "rb")', "Image.open(source)", "os.fdopen(fd, mode)",
    ]  # fmt: skip
    assert all(_direct_writes(x) for x in bad), [x for x in bad if not _direct_writes(x)]
    assert not any(_direct_writes(x) for x in good), [x for x in good if _direct_writes(x)]
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "utils.py" and path.parent == SRC:
            continue  # atomic_write itself
        for line, call in _direct_writes(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(SRC.parent)}:{line}: {call}")
    assert not offenders, "direct (non-atomic) writes:\n" + "\n".join(offenders)
