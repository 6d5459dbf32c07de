"""The challenge submission format: write, read, check."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from lightmark.errors import SubmissionError
from lightmark.submission import check_submission, read_submission, write_submission


def _write_images(folder, names):
    import cv2

    folder.mkdir()
    for n in names:
        cv2.imwrite(str(folder / n), np.zeros((384, 384, 3), np.uint8))


def test_round_trip_and_zip(tmp_path) -> None:
    names = ["a.jpg", "b.jpg"]
    pts = np.random.default_rng(0).uniform(0, 384, (2, 68, 2))
    write_submission(tmp_path / "solution.txt", names, pts, zip_path=tmp_path / "sub.zip")
    line = (tmp_path / "solution.txt").read_text().splitlines()[0]
    assert len(line.split(" ")) == 137 and "  " not in line
    got_names, got = read_submission(tmp_path / "solution.txt")
    assert got_names == names
    np.testing.assert_allclose(got, pts, atol=5e-4)
    with zipfile.ZipFile(tmp_path / "sub.zip") as z:
        assert z.namelist() == ["solution.txt"]
    _write_images(tmp_path / "imgs", names)
    rep = check_submission(tmp_path / "sub.zip", tmp_path / "imgs")
    assert rep.ok and rep.rows == 2 and rep.images == 2


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows[:1], "no row"),
        (lambda rows: rows + [rows[0]], "duplicate"),
        (lambda rows: [rows[0].rsplit(" ", 1)[0], rows[1]], "136 fields"),
        (lambda rows: [rows[0].replace(" ", "  ", 1), rows[1]], "fields"),
        (lambda rows: [rows[0].rsplit(" ", 1)[0] + " nan", rows[1]], "non-finite"),
        (lambda rows: [rows[0].rsplit(" ", 1)[0] + " abc", rows[1]], "not a number"),
        (lambda rows: [rows[0], "zzz.jpg" + rows[1][5:]], "name no image"),
    ],
)
def test_check_finds_problems(tmp_path, mutate, message) -> None:
    names = ["a.jpg", "b.jpg"]
    write_submission(tmp_path / "s.txt", names, np.zeros((2, 68, 2)))
    rows = (tmp_path / "s.txt").read_text().splitlines()
    (tmp_path / "s.txt").write_text("\n".join(mutate(rows)) + "\n")
    _write_images(tmp_path / "imgs", names)
    rep = check_submission(tmp_path / "s.txt", tmp_path / "imgs")
    assert not rep.ok
    assert any(message in p for p in rep.problems), rep.problems


def test_refuses_to_write_bad_values(tmp_path) -> None:
    with pytest.raises(SubmissionError, match="non-finite"):
        write_submission(tmp_path / "s.txt", ["a.jpg"], np.full((1, 68, 2), np.nan))
    with pytest.raises(SubmissionError, match="white space"):
        write_submission(tmp_path / "s.txt", ["a b.jpg"], np.zeros((1, 68, 2)))
    assert not (tmp_path / "s.txt").exists()


def test_check_flags_points_far_outside_their_image(tmp_path) -> None:
    import cv2

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((50, 40, 3), np.uint8))
    pts = np.full((1, 68, 2), 20.0)
    write_submission(tmp_path / "ok.txt", ["a.png"], pts)
    assert check_submission(tmp_path / "ok.txt", tmp_path / "imgs").ok
    pts[0, 5] = (20.0, 101.0)  # y beyond 2 x 50
    write_submission(tmp_path / "bad.txt", ["a.png"], pts)
    rep = check_submission(tmp_path / "bad.txt", tmp_path / "imgs")
    assert any("outside their image" in p for p in rep.problems), rep.problems
    (tmp_path / "imgs" / "a.png").write_bytes(b"not a png")  # an unreadable image: said, not passed over
    rep = check_submission(tmp_path / "ok.txt", tmp_path / "imgs")
    assert rep.problems == ["1 images are unreadable, their points unchecked (first: a.png)"]
