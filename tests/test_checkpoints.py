"""Checkpoint files: exact round trips, no unpickling, atomic replacement."""

import io
import json
import os
import pathlib
import pickle
import random
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from trainkit import archive as checkpoints
from trainkit.archive import load, save

NAMES = ["hid1.w/adam_m", "hidden_dropout/rng", "x[0]:y", "out.b", "", "ünï/còde", "a0", "header"]


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "hid1.w/adam_m": rng.standard_normal((3, 4)).astype("float32"),
        "hidden_dropout/rng": np.array([2**62 + 1, -5], dtype="int64"),
        "x[0]:y": rng.standard_normal(5),  # float64
        "out.b": np.float32(1.5) * np.ones((), dtype="float32"),  # 0-d
        "": np.zeros((0, 3), dtype="float64"),  # empty
        "ünï/còde": np.array([True, False]),
        "a0": np.arange(6, dtype="int32").reshape(2, 3).T,  # clashes with a storage key
        "header": np.array(["ab", "c"]),  # clashes with the header key
    }


META = {
    "step": 12,
    "loss": 0.125,
    "none": None,
    "nested": {"algo": "adam", "history": [1.0, 2.5, [3, "x"]], "flag": True},
    "unicode": "héllo ✓",
}


def test_round_trip_is_exact(tmp_path):
    arrays = sample_arrays()
    path = tmp_path / "model.npz"
    save(path, arrays, META)
    got, meta = load(path)
    assert list(got) == NAMES
    for name, array in arrays.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array)
    assert meta == META
    assert json.dumps(meta) == json.dumps(META)


def test_meta_numbers_nan_and_numpy_scalars(tmp_path):
    path = tmp_path / "m.npz"
    save(path, {}, {"best": float("inf"), "x": np.float32(0.5), "n": np.int64(3)})
    arrays, meta = load(path)
    assert arrays == {}
    assert meta == {"best": float("inf"), "x": 0.5, "n": 3}
    assert type(meta["n"]) is int


def test_default_meta_is_empty(tmp_path):
    save(str(tmp_path / "m"), {"w": np.ones(2)})
    assert load(str(tmp_path / "m"))[1] == {}


@pytest.mark.parametrize("name", ["model", "model.ckpt", "model.npz", "dir.v2/model"])
def test_path_is_used_verbatim(tmp_path, name):
    (tmp_path / "dir.v2").mkdir()
    path = tmp_path / name
    save(str(path), {"w": np.ones(3)}, {"step": 1})
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir() if p.is_file()) == [path.name]
    assert load(str(path))[1] == {"step": 1}
    assert load(pathlib.Path(path))[1] == {"step": 1}


def test_save_replaces_and_keeps_umask_permissions(tmp_path):
    path = tmp_path / "m.npz"
    save(path, {"x": np.zeros(2)}, {"step": 1})
    save(path, {"x": np.ones(2)}, {"step": 2})
    arrays, meta = load(path)
    assert meta == {"step": 2} and arrays["x"].tolist() == [1.0, 1.0]
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["m.npz"]


def test_failed_save_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save(path, {"x": np.zeros(2)}, {"step": 1})

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(path, {"x": np.ones(2)}, {"step": 2})
    monkeypatch.undo()
    assert load(path)[1] == {"step": 1}
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_rejects_bad_input(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"save: array 'w' has dtype object, which could only"):
        save(path, {"w": np.array([{}, 1], dtype=object)})
    with pytest.raises(TypeError, match=r"save: array names must be strings; got 3"):
        save(path, {3: np.ones(1)})
    with pytest.raises(TypeError, match=r"save: meta must be a dict; got list"):
        save(path, {}, [1])
    with pytest.raises(TypeError, match=r"save: meta must be JSON-serialisable: .*ndarray"):
        save(path, {}, {"x": np.ones(2)})
    with pytest.raises(TypeError, match=r"save: arrays must be a mapping"):
        save(path, [np.ones(1)])
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load(path)


# ---- crafted and malformed files -----------------------------------------------


class Payload:
    """Unpickling this creates the file ``marker`` (proof that code ran)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def header_text(names=(), meta=None):
    return json.dumps(
        {"format": "trainkit", "version": 1, "names": list(names), "meta": meta or {}}
    )


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def hand_made_object_npy(payload):
    """An .npy member written by hand: a header declaring dtype object, then a pickle."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    prefix = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1")
    return prefix + pickle.dumps(np.array([payload], dtype=object))


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_payload_is_live(tmp_path):
    """The payload really runs code when unpickled, so the tests below mean something."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "hand.npz"
    write_zip(path, {"a0.npy": hand_made_object_npy(Payload(marker))})
    with np.load(path, allow_pickle=True) as archive:
        archive["a0"][0].close()
    assert marker.exists()


def crafted_files(tmp_path, marker):
    payload = Payload(marker)
    good_header = npy_bytes(np.array(header_text(["w"])))

    savez_object = tmp_path / "savez_object.npz"
    np.savez(
        savez_object, header=np.array(header_text(["w"])), a0=np.array([payload], dtype=object)
    )
    hand_member = tmp_path / "hand_member.npz"
    write_zip(hand_member, {"header.npy": good_header, "a0.npy": hand_made_object_npy(payload)})
    hand_header = tmp_path / "hand_header.npz"
    write_zip(hand_header, {"header.npy": hand_made_object_npy(payload)})
    raw_pickle = tmp_path / "raw_pickle.npz"
    write_zip(raw_pickle, {"header.npy": good_header, "a0.pkl": pickle.dumps(payload)})
    plain_pickle = tmp_path / "plain.pkl"
    plain_pickle.write_bytes(pickle.dumps(payload))
    return [savez_object, hand_member, hand_header, raw_pickle, plain_pickle]


def test_crafted_pickles_are_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    for path in crafted_files(tmp_path, marker):
        with pytest.raises(ValueError, match=re.escape(f"{path}: ")):
            load(path)
        assert not marker.exists(), path


def test_object_array_message(tmp_path):
    marker = tmp_path / "pwned"
    path = crafted_files(tmp_path, marker)[0]
    with pytest.raises(
        ValueError,
        match=r"not a valid trainkit checkpoint: member 'a0.npy' holds Python objects .*never loads pickled",
    ):
        load(path)


def malformed(tmp_path):
    good = tmp_path / "good.npz"
    save(good, {"w": np.arange(1000.0)}, {"step": 1})
    data = good.read_bytes()
    cases = {}

    def case(name, why, content):
        path = tmp_path / name
        path.write_bytes(content)
        cases[name] = (path, why)

    case("text.txt", "not a zip", b"hello, I am not a checkpoint\n")
    case("empty", "not a zip", b"")
    case("array.npy", "not a zip", npy_bytes(np.ones(3)))
    case("truncated.npz", "BadZipFile", data[: len(data) // 2])

    def zipped(name, why, members):
        path = tmp_path / name
        write_zip(path, members)
        cases[name] = (path, why)

    header = npy_bytes(np.array(header_text(["w"], {"step": 1})))
    w = npy_bytes(np.ones(2))
    zipped("plain_npz.npz", "no 'header' entry", {"w.npy": w})
    zipped("not_json.npz", "header is not JSON", {"header.npy": npy_bytes(np.array("{oops"))})
    zipped(
        "header_not_string.npz",
        "header is a float64 array, not a string",
        {"header.npy": npy_bytes(np.ones(2))},
    )
    for kind, meta in [("array", [1, 2]), ("string", "x"), ("null", None), ("number", 3)]:
        text = json.dumps({"format": "trainkit", "version": 1, "names": ["w"], "meta": meta})
        zipped(
            f"meta_{kind}.npz",
            f"meta is a JSON {kind}, not an object",
            {"header.npy": npy_bytes(np.array(text)), "a0.npy": w},
        )
    no_meta = json.dumps({"format": "trainkit", "version": 1, "names": ["w"]})
    zipped("no_meta.npz", "the header has no meta", {"header.npy": npy_bytes(np.array(no_meta))})
    zipped(
        "header_list.npz",
        "the header is not a trainkit header",
        {"header.npy": npy_bytes(np.array("[1, 2]"))},
    )
    version = json.dumps({"format": "trainkit", "version": 99, "names": [], "meta": {}})
    zipped("version.npz", "unsupported version 99", {"header.npy": npy_bytes(np.array(version))})
    zipped(
        "missing_array.npz",
        "the header names 1 arrays but the file holds none",
        {"header.npy": header},
    )
    zipped(
        "extra_array.npz",
        "the header names 1 arrays but the file holds a0, a1",
        {"header.npy": header, "a0.npy": w, "a1.npy": w},
    )
    repeat = header_text(["w", "w"])
    zipped(
        "repeat.npz",
        "names repeat",
        {"header.npy": npy_bytes(np.array(repeat)), "a0.npy": w, "a1.npy": w},
    )
    return cases


def test_malformed_files_raise_value_error_naming_the_path(tmp_path):
    cases = malformed(tmp_path)
    assert load(tmp_path / "good.npz")[1] == {"step": 1}
    for path, why in cases.values():
        expected = re.escape(f"{path}: not a valid trainkit checkpoint: ") + ".*" + why
        with pytest.raises(checkpoints.CheckpointError, match=expected):
            load(path)
    assert issubclass(checkpoints.CheckpointError, ValueError)


# ---- atomicity under SIGKILL -------------------------------------------------------

# The writer imports trainkit.archive under a bare stand-in for the trainkit
# package (it needs only numpy) rather than running the package's __init__,
# which pulls in PyTensor (~1 s a start).
WRITER = """
import os, sys, types
import numpy as np
path, marker, module = sys.argv[1:4]
package = types.ModuleType("trainkit")
package.__path__ = [os.path.dirname(module)]
sys.modules["trainkit"] = package
from trainkit.archive import save
step = 0
while True:
    x = np.full(250_000, step, dtype="float64")  # 2 MB
    y = np.full(100_000, -step, dtype="int32")
    save(path, {"x": x, "y/state": y}, {"step": step, "pad": "z" * (step % 7)})
    if step == 1:  # from now on every save replaces a complete file
        open(marker, "w").close()
    step += 1
"""


def test_killed_writer_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    rng = random.Random(1234)
    deadline = time.monotonic() + 60
    for kill in range(4):
        marker = tmp_path / f"started{kill}"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(marker), checkpoints.__file__]
        )
        try:
            while not marker.exists():
                assert writer.poll() is None, "writer died"
                assert time.monotonic() < deadline, "writer never finished a save"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        arrays, meta = load(path)
        step = meta["step"]
        assert arrays["x"].shape == (250_000,) and arrays["y/state"].shape == (100_000,)
        assert (arrays["x"] == step).all() and (arrays["y/state"] == -step).all()
        assert meta["pad"] == "z" * (step % 7)
        assert step >= 1
        leftovers = [p.name for p in tmp_path.iterdir() if p.name not in {"ckpt.npz", marker.name}]
        assert all(re.fullmatch(r"\.ckpt\.npz\.[0-9a-f]+\.tmp|started\d", n) for n in leftovers)
        # each save first removes what killed writers left: at most the last one's temporary
        assert sum(n.endswith(".tmp") for n in leftovers) <= 1, leftovers
    save(path, {"x": np.zeros(1)})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("started")) == [
        "ckpt.npz"
    ]
