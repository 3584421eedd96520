"""Data files for the command line: npz, npy (memory-mapped), CSV, splits, digits."""

import numpy as np
import pytest

from trainkit.cli import arrayfiles
from trainkit.cli import files as datasets
from trainkit.cli.errors import DataError


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    np.savez(tmp_path / "train.npz", inputs=x, labels=y, w=np.ones(20, "float32"))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    with open(tmp_path / "train.csv", "w") as f:
        f.write("a,b,c,label\n")
        for row, label in zip(x, y, strict=True):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    return tmp_path, x, y


def test_npz_arrays_by_name(files):
    folder, x, y = files
    got = arrayfiles.read_file(folder / "train.npz", {"x": "inputs", "y": "labels", "weights": "w"})
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(got["y"], y)
    assert got["weights"].shape == (20,)


def test_missing_npz_array_lists_the_names_and_the_closest(files):
    folder, _, _ = files
    with pytest.raises(
        DataError,
        match=r"no array 'label'; the file holds inputs, labels, w "
        r"\(closest: labels\)",
    ) as info:
        arrayfiles.read_file(folder / "train.npz", {"x": "inputs", "y": "label"})
    assert info.value.key == "y"


def test_npy_is_memory_mapped(files):
    folder, x, _ = files
    got = arrayfiles.read_npy(folder / "x.npy")
    assert isinstance(got, np.memmap) and got.mode == "r"
    np.testing.assert_array_equal(got, x)


def test_csv_named_columns_and_default_inputs(files):
    folder, x, y = files
    got = arrayfiles.read_csv(folder / "train.csv", {"x": None, "y": "label"})
    assert got["x"].shape == (20, 3) and got["y"].shape == (20,)
    np.testing.assert_allclose(got["x"], x, atol=1e-6)
    np.testing.assert_array_equal(got["y"], y)
    two = arrayfiles.read_csv(folder / "train.csv", {"x": ["c", "a"]})["x"]
    np.testing.assert_allclose(two, x[:, [2, 0]], atol=1e-6)
    with pytest.raises(
        DataError,
        match=r"no column 'lable'; the columns are a, b, c, label "
        r"\(closest: label\)",
    ):
        arrayfiles.read_csv(folder / "train.csv", {"x": None, "y": "lable"})


def test_csv_with_text_values_names_the_file(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"bad.csv: could not convert string 'oops'"):
        arrayfiles.read_csv(tmp_path / "bad.csv", {"x": None})
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty.csv: empty file; expected a header row"):
        arrayfiles.read_csv(tmp_path / "empty.csv", {"x": None})


def test_missing_files_and_unknown_types(tmp_path):
    with pytest.raises(DataError, match=r"nothing.npz: no such file"):
        arrayfiles.read_file(tmp_path / "nothing.npz", {"x": "x"})
    (tmp_path / "data.txt").write_text("1")
    with pytest.raises(DataError, match=r"unknown file type '.txt'; use .npz, .npy or .csv"):
        arrayfiles.read_file(tmp_path / "data.txt", {"x": None})


def test_load_with_table_of_npy_files_and_a_split_that_keeps_memmaps(files, tmp_path):
    folder, x, y = files
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    section = {
        "train": {"x": str(folder / "x.npy"), "y": str(folder / "y.npy")},
        "valid_fraction": 0.25,
        "split_seed": 3,
    }
    data = datasets.load(section, "Classifier", scratch=str(scratch))
    assert data.n_train == 15 and data.n_valid == 5
    assert all(isinstance(a, np.memmap) for a in data.train + data.valid)
    train_rows, valid_rows = datasets.split_indices(20, 0.25, seed=3)
    np.testing.assert_array_equal(data.train[0], x[train_rows])
    np.testing.assert_array_equal(data.valid[1], y[valid_rows])
    assert "5 held out" in data.description
    again = datasets.load(section, "Classifier")  # no scratch: split in memory, same rows
    np.testing.assert_array_equal(again.valid[0], data.valid[0])


def test_take_rows_copies_memmaps_in_chunks(files, tmp_path):
    folder, x, _ = files
    index = np.array([1, 4, 5, 19])
    out = datasets.take_rows(arrayfiles.read_npy(folder / "x.npy"), index, tmp_path, chunk_rows=3)
    assert isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, x[index])


def test_split_is_seeded_and_complete():
    a = datasets.split_indices(100, 0.2, seed=1)
    b = datasets.split_indices(100, 0.2, seed=1)
    c = datasets.split_indices(100, 0.2, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    assert len(a[1]) == 20 and sorted([*a[0], *a[1]]) == list(range(100))
    with pytest.raises(DataError, match="cannot split 1 example"):
        datasets.split_indices(1, 0.5)


def test_mismatched_lengths_and_missing_roles(files, tmp_path):
    folder, x, _ = files
    np.save(tmp_path / "short.npy", np.zeros(7, "int64"))
    section = {"train": {"x": str(folder / "x.npy"), "y": str(tmp_path / "short.npy")}}
    with pytest.raises(DataError, match=r"arrays have different lengths: x 20, y 7"):
        datasets.load(section, "Classifier")
    with pytest.raises(DataError, match=r"no y array given"):
        datasets.load({"train": {"x": str(folder / "x.npy")}}, "Regressor")
    with pytest.raises(DataError, match=r"a .npy file holds one array, but x, y are needed"):
        datasets.load({"train": str(folder / "x.npy")}, "Regressor")
    with pytest.raises(DataError, match=r"name the target column"):
        datasets.load({"train": str(folder / "train.csv")}, "Classifier")
    with pytest.raises(DataError, match=r"an Autoencoder's target is its input"):
        datasets.load({"train": str(folder / "train.npz"), "y": "labels"}, "Autoencoder")


def test_load_csv_and_npz_sections(files):
    folder, x, y = files
    data = datasets.load({"train": str(folder / "train.csv"), "y": "label"}, "Classifier")
    assert data.valid is None and "validation on the training data" in data.description
    np.testing.assert_array_equal(data.train[1], y)
    data = datasets.load(
        {"train": str(folder / "train.npz"), "x": "inputs", "y": "labels", "weights": "w"},
        "Regressor",
    )
    assert len(data.train) == 3
    data = datasets.load({"train": str(folder / "train.npz"), "x": "inputs"}, "Autoencoder")
    assert len(data.train) == 1


def test_fit_input_reads_rows_as_time_steps():
    flat = np.arange(24.0).reshape(2, 12)
    seq = datasets.fit_input(flat, 4, recurrent=True)
    assert seq.shape == (2, 3, 4) and seq[1, 2, 3] == 23
    assert datasets.fit_input(flat, 12, recurrent=False) is flat
    with pytest.raises(DataError, match=r"12 values per example cannot be read as sequences of 5"):
        datasets.fit_input(flat, 5, recurrent=True)


def test_digits_are_the_uci_images():
    x, y = datasets.digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 1 and set(np.unique(y)) == set(range(10))
    # the first image is a zero (scikit-learn's load_digits().images[0] / 16)
    assert y[0] == 0 and x[0, 0].tolist() == [0, 0, 5 / 16, 13 / 16, 9 / 16, 1 / 16, 0, 0]


def test_write_output(tmp_path):
    arrayfiles.write_output(tmp_path / "a.csv", np.array([1, 0, 2]), ["label"])
    assert (tmp_path / "a.csv").read_text() == "label\n1\n0\n2\n"
    arrayfiles.write_output(tmp_path / "b.csv", np.array([[0.25, 0.75]]), ["p0", "p1"])
    assert (tmp_path / "b.csv").read_text() == "p0,p1\n0.25,0.75\n"
    arrayfiles.write_output(tmp_path / "c.npy", np.ones((2, 3, 4)))
    assert np.load(tmp_path / "c.npy").shape == (2, 3, 4)
    with pytest.raises(DataError, match=r"do not fit a CSV table; write .npy"):
        arrayfiles.write_output(tmp_path / "d.csv", np.ones((2, 3, 4)))
    with pytest.raises(DataError, match=r"unknown output type '.txt'"):
        arrayfiles.write_output(tmp_path / "e.txt", np.ones(2))


def damaged_copies(folder):
    """A truncated, a bit-flipped and a garbage copy of train.npz, and a garbage .npy."""
    data = (folder / "train.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[200] ^= 0x10  # inside the first member's array data: the CRC no longer matches
    (folder / "flipped.npz").write_bytes(bytes(flipped))
    (folder / "garbage.npz").write_bytes(b"these are not the arrays you are looking for\n" * 20)
    (folder / "garbage.npy").write_bytes(b"\x80\x04K\x01." * 10)  # a pickle
    return ["truncated.npz", "flipped.npz", "garbage.npz", "garbage.npy"]


def test_damaged_data_files_are_one_line_naming_the_file(files):
    folder, _, _ = files
    for name in damaged_copies(folder):
        path = folder / name
        with pytest.raises(DataError) as info:
            arrayfiles.read_file(
                path, {"x": "inputs", "y": "labels"} if name.endswith("z") else {"x": None}
            )
        message = str(info.value)
        assert message.startswith(f"{path}: not"), message
        assert "\n" not in message and "allow_pickle" not in message, message
        with pytest.raises(DataError, match=r"^" + str(path)) as info:
            arrayfiles.read_input(path, array="inputs" if name.endswith("z") else None)
        assert "allow_pickle" not in str(info.value)


def test_damaged_data_in_the_cli_is_exit_2(files):
    from test_cli import invoke, one_line_error

    import trainkit

    folder, x, _ = files
    damaged_copies(folder)
    trainkit.Regressor([3, 1]).save(folder / "m.npz")
    for name in ("truncated.npz", "flipped.npz", "garbage.npz"):
        message = one_line_error(
            invoke("predict", folder / "m.npz", folder / name, "--array", "inputs", "-o", "o.npy")
        )
        assert str(folder / name) in message and "allow_pickle" not in message
    (folder / "run.toml").write_text(
        '[model]\nkind = "Classifier"\nlayers = [3, 2]\n'
        f'[data]\ntrain = "{folder / "truncated.npz"}"\nx = "inputs"\ny = "labels"\n'
    )
    message = one_line_error(invoke("train", folder / "run.toml", "--run-dir", folder / "r"))
    assert "truncated.npz: not a readable .npz file" in message
