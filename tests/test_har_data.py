"""The .ts loader and sliding windows, on the real UEA files and on malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from anyedge.errors import AnyEdgeError, InputError
from anyedge.har import load_ts, sliding_windows

from .har_support import har_file


@pytest.mark.parametrize(
    "name, split, n, length, counts",
    [
        ("RacketSports", "train", 151, 30, None),
        ("RacketSports", "test", 152, 30, None),
        ("BasicMotions", "train", 40, 100, [10, 10, 10, 10]),
        ("BasicMotions", "test", 40, 100, [10, 10, 10, 10]),
    ],
)
def test_load_real_files(name, split, n, length, counts):
    ds = load_ts(har_file(name, split))
    assert ds.x.shape == (n, length, 6)
    assert ds.x.dtype == np.float32
    assert len(ds.labels) == 4 and ds.name == name
    assert ds.y.min() >= 0 and ds.y.max() == 3
    assert np.isfinite(ds.x).all()
    if counts:
        assert np.bincount(ds.y).tolist() == counts


def test_values_land_in_time_major_layout():
    ds = load_ts(har_file("RacketSports", "train"))
    # first case: dimension 0 starts 1.266676,-2.180751; dimension 1 starts 0.268223; label Badminton_Smash
    np.testing.assert_allclose(ds.x[0, :2, 0], [1.266676, -2.180751], rtol=1e-6)
    np.testing.assert_allclose(ds.x[0, 0, 1], 0.268223, rtol=1e-6)
    assert ds.labels[ds.y[0]] == "Badminton_Smash"
    assert ds.labels == ("Badminton_Smash", "Badminton_Clear", "Squash_ForehandBoast", "Squash_BackhandBoast")


GOOD_HEADER = "@problemName T\n@dimensions 2\n@equalLength true\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "no @data"),
        ("@problemName T\n@dimensions 2\n", "no @data"),
        (GOOD_HEADER, "no cases"),
        (GOOD_HEADER + "1,2,3:4,5,6\n", "dimensions"),  # label missing
        (GOOD_HEADER + "1,2,3:4,5,6:c\n", "not one of"),
        (GOOD_HEADER + "1,x,3:4,5,6:a\n", "not a number"),
        (GOOD_HEADER + "1,?,3:4,5,6:a\n", "not a number"),
        (GOOD_HEADER + "1,nan,3:4,5,6:a\n", "non-finite"),
        (GOOD_HEADER + "1,2,3:4,5:a\n", "values per dimension"),
        (GOOD_HEADER + "1,2,3:4,5,6:a\n1,2:3,4:b\n", "values per dimension"),
        ("@timeStamps true\n" + GOOD_HEADER + "1:2:a\n", "timestamps"),
        ("@equalLength false\n@data\n1:2\n", "unequal"),
        ("@dimensions two\n@classLabel false\n@data\n1:2\n", "integer"),
        ("@classLabel maybe\n@data\n1:2\n", "true or false"),
        ("hello\n@data\n", "header line"),
    ],
)
def test_malformed_ts(tmp_path, text, needle):
    p = tmp_path / "bad.ts"
    p.write_text(text)
    with pytest.raises(InputError, match=needle):
        load_ts(p)


def test_unlabelled_and_missing_files(tmp_path):
    p = tmp_path / "u.ts"
    p.write_text("@dimensions 2\n@classLabel false\n@data\n1,2,3:4,5,6\n7,8,9:1,2,3\n")
    ds = load_ts(p)
    assert ds.x.shape == (2, 3, 2) and ds.y.tolist() == [-1, -1] and ds.labels == ()
    with pytest.raises(InputError, match="does not exist"):
        load_ts(tmp_path / "missing.ts")
    b = tmp_path / "bin.ts"
    b.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(AnyEdgeError):
        load_ts(b)


def _stream(n, c=3):
    return np.arange(n * c, dtype=np.float32).reshape(n, c)


@pytest.mark.parametrize("n, length, hop", [(10, 4, 2), (10, 4, 4), (10, 4, 5), (4, 4, 1), (3, 4, 1), (0, 4, 2), (25, 7, 3)])
def test_sliding_windows_table(n, length, hop):
    s = _stream(n)
    got = list(sliding_windows(s, length, hop))
    starts = list(range(0, n - length + 1, hop)) if n >= length else []
    assert [st for st, _ in got] == starts
    for st, w in got:
        np.testing.assert_array_equal(w, s[st : st + length])
    # a generator of rows yields the same windows
    gen = list(sliding_windows((row.tolist() for row in s), length, hop))
    assert [st for st, _ in gen] == starts
    for (_, a), (_, b) in zip(got, gen):
        np.testing.assert_array_equal(a, b)


def test_sliding_windows_default_hop_and_copies():
    s = _stream(8)
    got = list(sliding_windows(s, 4))
    assert [st for st, _ in got] == [0, 4]
    got[0][1][:] = -1  # yielded windows are copies
    assert list(sliding_windows(s, 4))[0][1][0, 0] == 0


@pytest.mark.parametrize(
    "samples, length, hop, kwargs, needle",
    [
        (_stream(5), 0, None, {}, "length"),
        (_stream(5), 2.5, None, {}, "length"),
        (_stream(5), 2, 0, {}, "hop"),
        (_stream(5), 2, None, {"channels": 4}, "channels"),
        ([[1, 2], [3, 4, 5]], 2, None, {}, "channels"),
        ([[1, 2], [np.nan, 4]], 2, None, {}, "NaN"),
        ([[1, 2], [np.inf, 4]], 2, None, {}, "NaN"),
        ([[1, 2], ["a", 4]], 2, None, {}, "numbers"),
        ([[[1, 2]]], 2, None, {}, "1-D"),
        (np.zeros(5, dtype=np.float32), 2, None, {}, "channels"),
    ],
)
def test_sliding_windows_bad_input(samples, length, hop, kwargs, needle):
    with pytest.raises(InputError, match=needle):
        list(sliding_windows(samples, length, hop, **kwargs))
