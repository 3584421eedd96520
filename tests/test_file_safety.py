"""Model, checkpoint and data files that lie about their sizes, and leftover temporaries.

Each crafted file must be refused in one line *before* anything large is
allocated: the tests measure the peak of traced allocations (numpy reports
its buffers to tracemalloc).
"""

import io
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

import trainkit
from trainkit import archive
from trainkit.archive import CheckpointError

LIMIT = 20 * 2**20  # bytes a refused file may make us allocate


def npy_header_only(shape, descr="<f8", payload=b""):
    """An .npy member whose header declares ``shape`` followed by ``payload``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    return (
        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + payload
    )


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def header_member(names, meta=None):
    import json

    text = json.dumps({"format": "trainkit", "version": 1, "names": names, "meta": meta or {}})
    return npy_bytes(np.array(text))


def refused_cheaply(function, *args, match):
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match):
            function(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < LIMIT, f"allocated {peak} bytes before refusing"


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.npz"
    trainkit.Regressor([3, 8, 2]).save(path)
    return path


def with_config(source, target, **changes):
    arrays, meta = archive.load(source)
    meta["config"] = {**meta["config"], **changes}
    archive.save(target, arrays, meta)
    return target


def test_config_implying_more_parameters_than_the_file_holds(model_file, tmp_path):
    """An 8 kB model declaring two 16,000-unit layers is refused before building."""
    layers = [{"size": 3}, dict(size=16000, form="feedforward", activation="relu", name="hid1")]
    layers.append(dict(size=16000, form="feedforward", activation="linear", name="out"))
    path = with_config(model_file, tmp_path / "big.npz", layers=layers)
    assert path.stat().st_size < 10_000
    message = r"model file: the config implies parameter 'hid1.w' as float32\[3, 16000\]"
    refused_cheaply(trainkit.load, path, match=message)
    layers[1]["size"] = 10**9
    path = with_config(model_file, tmp_path / "huge.npz", layers=layers)
    refused_cheaply(trainkit.load, path, match=r"float32\[3, 1000000000\] but the file holds")


def test_member_declaring_a_huge_shape(tmp_path):
    path = tmp_path / "shape.npz"
    with zipfile.ZipFile(path, "w") as file:
        file.writestr("header.npy", header_member(["w"]))
        file.writestr("a0.npy", npy_header_only((10**6, 10**6), payload=b"\0" * 64))
    refused_cheaply(
        archive.load,
        path,
        match=re.escape("member 'a0.npy' declares shape (1000000, 1000000) of float64 ")
        + r"\(8000000000000 bytes\) but holds 64 bytes",
    )


def test_zip_bomb_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as file:
        file.writestr("header.npy", header_member(["w"]))
        file.writestr("a0.npy", npy_bytes(np.zeros(4 * 2**20)))  # 32 MB of zeros, ~32 kB packed
    assert path.stat().st_size < 100_000
    refused_cheaply(archive.load, path, match=r"would expand .* \(more than 100:1\); refusing")


def test_compressed_files_within_the_limit_still_load(tmp_path):
    path = tmp_path / "small.npz"
    values = np.random.default_rng(0).normal(size=(50, 40))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as file:
        file.writestr("header.npy", header_member(["w", "zeros"]))
        file.writestr("a0.npy", npy_bytes(values))
        file.writestr("a1.npy", npy_bytes(np.zeros(20_000)))  # 160 kB of zeros: under 1 MiB
    arrays, _ = archive.load(path)
    np.testing.assert_array_equal(arrays["w"], values)
    assert arrays["zeros"].shape == (20_000,)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_parameters_are_refused(model_file, value):
    arrays, meta = archive.load(model_file)
    arrays["out.w"][1, 0] = value
    archive.save(model_file, arrays, meta)
    with pytest.raises(CheckpointError, match=r"parameter 'out.w' holds 1 non-finite value"):
        trainkit.load(model_file)


def test_a_bad_model_file_is_one_line_in_the_cli(model_file, tmp_path):
    from test_cli import invoke, one_line_error

    layers = [{"size": 3}, dict(size=16000, form="feedforward", activation="linear", name="out")]
    path = with_config(model_file, tmp_path / "big.npz", layers=layers)
    message = one_line_error(invoke("describe", path))
    assert ": not a valid trainkit model file: the config implies parameter 'out.w'" in message


# -- saving -------------------------------------------------------------------------


def test_save_into_a_missing_directory_names_the_target(tmp_path):
    target = tmp_path / "missing" / "m.npz"
    net = trainkit.Regressor([2, 1])
    expected = f"{target}: cannot save: the directory {target.parent} does not exist"
    with pytest.raises(FileNotFoundError, match=re.escape(expected)) as caught:
        net.save(target)
    assert ".tmp" not in str(caught.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"file/m.npz: cannot save: .*file is not a dir"):
        archive.save(tmp_path / "file" / "m.npz", {})


def test_stale_temporaries_of_the_same_target_are_removed_on_save(tmp_path):
    fcntl = pytest.importorskip("fcntl")  # POSIX: how a live writer is told apart
    target = tmp_path / "checkpoint.npz"
    stale = [tmp_path / f".checkpoint.npz.{h}.tmp" for h in ("0123456789ab", "ba9876543210")]
    others = [
        tmp_path / ".model.npz.0123456789ab.tmp",  # another target's temporary
        tmp_path / ".checkpoint.npz.backup.tmp",  # not a name save makes
        tmp_path / "checkpoint.npz.0123456789ab.tmp",
        tmp_path / "notes.txt",
    ]
    live = tmp_path / ".checkpoint.npz.aaaaaaaaaaaa.tmp"  # a writer still at work
    for path in [*stale, *others, live]:
        path.write_bytes(b"partial")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        archive.save(target, {"x": np.ones(2)})
        assert live.exists()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    assert archive.load(target)[0]["x"].tolist() == [1.0, 1.0]
    assert archive.remove_stale(target) == [str(live)]  # its writer is gone now
