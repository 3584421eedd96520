"""Tests for trainkit.data: array checks, batching, memmaps, streams and exact resume."""

import json
import re

import numpy as np
import pytest

from trainkit.data import ArraySpec, Dataset, check_arrays
from trainkit.data import arrays as data_module

X = ArraySpec("x", ndim=2, features=8)
Y = ArraySpec("y", ndim=1, kind="int", low=0, high=9)
W = ArraySpec.weights_for(Y)
SPECS = [X, Y, W]


def xy(n=100, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 8)), rng.integers(0, 10, n)]


def raises(error, message):
    return pytest.raises(error, match="^" + re.escape(message) + "$")


def draw(dataset, k):
    return [dataset.next_batch() for _ in range(k)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b, strict=True):
        assert len(batch_a) == len(batch_b)
        for u, v in zip(batch_a, batch_b, strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape
            assert u.tobytes() == v.tobytes()


# ---------------------------------------------------------------- ArraySpec


def test_spec_defaults_and_axes():
    assert X.dtype == "float32" and Y.dtype == "int64"
    assert X.axes == ("batch", "features")
    assert ArraySpec("x", 3).axes == ("batch", "time", "features")
    assert Y.axes == ("batch",)
    assert ArraySpec("y", 2, kind="int").axes == ("batch", "time")
    # issue 15: sample weights must not all be 0 (positive_total)
    assert W == ArraySpec(
        "weights", 1, dtype="float32", low=0, optional=True, like="y", positive_total=True
    )
    seq_y = ArraySpec("y", 3, features=4)
    assert ArraySpec.weights_for(seq_y).ndim == 2
    assert ArraySpec.weights_for(seq_y).axes == ("batch", "time")


def test_spec_errors():
    with raises(
        ValueError, "kind: unknown array kind 'floats'; choose from float, int (closest: float)"
    ):
        ArraySpec("x", 2, kind="floats")
    with raises(ValueError, "dtype: 'float32' does not hold int values"):
        ArraySpec("y", 1, kind="int", dtype="float32")
    with raises(ValueError, "dtype: 'nonsense' is not a numpy dtype"):
        ArraySpec("x", 2, dtype="nonsense")
    with raises(ValueError, "ndim: expected an integer >= 1, got 0"):
        ArraySpec("x", 0)
    with raises(ValueError, "time: needs ndim >= 2 (time is axis 1), got ndim 1"):
        ArraySpec("x", 1, time=5)
    with raises(ValueError, "specs: optional arrays must come last, got weights, x"):
        check_arrays([np.zeros((2, 8))], [W, X])
    with raises(ValueError, "specs: weights.like: unknown array 'y'; choose from weights, x"):
        check_arrays([np.zeros((2, 8))], [X, W])


# ------------------------------------------------------------- check_arrays


def test_check_arrays_accepts_and_returns_the_arrays():
    x, y = xy()
    out = check_arrays([x, y], SPECS)
    assert out[0] is x and out[1] is y
    w = np.ones(100)
    assert check_arrays((x, y.astype(float), w), SPECS)[2] is w


def test_check_arrays_count():
    x, y = xy()
    with raises(ValueError, "train: expected 2 or 3 arrays (x, y[, weights]), got 4"):
        check_arrays([x, y, y, y], SPECS)
    with raises(ValueError, "valid: expected 2 or 3 arrays (x, y[, weights]), got 1"):
        check_arrays([x], SPECS, argument="valid")
    with raises(ValueError, "train: expected 1 array (x), got 2"):
        check_arrays([x, y], [X])
    with raises(
        TypeError, "train: expected a list or tuple of arrays (x, y[, weights]), got ndarray"
    ):
        check_arrays(x, SPECS)


def test_check_arrays_shapes():
    x, y = xy()
    with raises(
        ValueError,
        "train: array 0 ('x') has 3 dimensions, shape (10, 5, 3); "
        "expected 2 dimensions (batch, features)",
    ):
        check_arrays([np.zeros((10, 5, 3)), y[:10]], SPECS)
    with raises(ValueError, "train: array 0 ('x') has 7 features; the model's input has 8"):
        check_arrays([x[:, :7], y], SPECS)
    with raises(
        ValueError,
        "train: array 1 ('y') has 2 dimensions, shape (100, 1); expected 1 dimensions (batch)",
    ):
        check_arrays([x, y[:, None]], SPECS)
    with raises(ValueError, "train: arrays have different lengths: x 100, y 99"):
        check_arrays([x, y[:99]], SPECS)
    with raises(ValueError, "train: arrays are empty (0 examples); expected at least 1"):
        check_arrays([x[:0], y[:0]], SPECS)
    with raises(TypeError, "train: array 1 ('y') has dtype <U1; expected integer class labels"):
        check_arrays([x, np.array(["a"] * 100)], SPECS)
    seq = ArraySpec("x", 3, features=2, time=5)
    with raises(
        ValueError,
        "train: array 0 ('x') has 4 time steps (axis 1), shape (3, 4, 2); the model expects 5",
    ):
        check_arrays([np.zeros((3, 4, 2))], [seq])
    with raises(ValueError, "train: array 1 ('y') has 3 features; the model's output has 4"):
        check_arrays(
            [np.zeros((3, 4, 2)), np.zeros((3, 4, 3))],
            [ArraySpec("x", 3), ArraySpec("y", 3, features=4)],
        )


def test_check_arrays_weights_shape():
    x, y = xy()
    with raises(
        ValueError,
        "train: array 2 ('weights') has 2 dimensions, shape (100, 1); "
        "expected 1 dimensions (batch)",
    ):
        check_arrays([x, y, np.ones((100, 1))], SPECS)
    seq_y = ArraySpec("y", 3, features=4)
    specs = [ArraySpec("x", 3), seq_y, ArraySpec.weights_for(seq_y)]
    x3, y3 = np.zeros((6, 5, 2)), np.zeros((6, 5, 4))
    check_arrays([x3, y3, np.ones((6, 5))], specs)
    with raises(
        ValueError,
        "train: array 2 ('weights') has shape (6, 4); expected (6, 5), "
        "the leading axes of 'y' (6, 5, 4)",
    ):
        check_arrays([x3, y3, np.ones((6, 4))], specs)


def test_check_arrays_values():
    x, y = xy()
    bad = x.copy()
    bad[17, 3] = np.nan
    bad[40, 0] = np.inf
    with raises(ValueError, "train: array 0 ('x') contains NaN or Inf (first at row 17)"):
        check_arrays([bad, y], SPECS)
    bad = x.copy()
    bad[63, 7] = -np.inf
    with raises(ValueError, "train: array 0 ('x') contains NaN or Inf (first at row 63)"):
        check_arrays([bad, y], SPECS)
    labels = y.copy()
    labels[5] = 10
    with raises(ValueError, "train: array 1 ('y') has labels out of range: found 10, allowed 0..9"):
        check_arrays([x, labels], SPECS)
    labels[5] = -1
    with raises(ValueError, "train: array 1 ('y') has labels out of range: found -1, allowed 0..9"):
        check_arrays([x, labels], SPECS)
    floats = y.astype(float)
    floats[3] = 0.5
    with raises(
        ValueError, "train: array 1 ('y') must hold integer class labels, got float64 values 0.5"
    ):
        check_arrays([x, floats], SPECS)
    floats[3] = np.nan
    with raises(ValueError, "train: array 1 ('y') contains NaN or Inf (first at row 3)"):
        check_arrays([x, floats], SPECS)
    weights = np.ones(100)
    weights[9] = -1.0
    with raises(
        ValueError, "train: array 2 ('weights') has values out of range: found -1, allowed >= 0"
    ):
        check_arrays([x, y, weights], SPECS)
    weights[9] = np.nan
    with raises(ValueError, "train: array 2 ('weights') contains NaN or Inf (first at row 9)"):
        check_arrays([x, y, weights], SPECS)
    # structure-only check ignores values
    assert check_arrays([x, y, weights], SPECS, values=False)[2] is weights


class SpyMemmap(np.memmap):
    """A memmap that records the index of every read (class-wide list ``reads``)."""

    reads = []

    def __getitem__(self, key):
        SpyMemmap.reads.append(key)
        return super().__getitem__(key)


def spy(path):
    SpyMemmap.reads = []
    return np.load(path, mmap_mode="r").view(SpyMemmap)


def test_check_arrays_streams_memmaps_in_chunks(tmp_path):
    x = np.random.default_rng(1).normal(size=(49, 8))
    x[45, 2] = np.nan  # in the last chunk of 7 rows (rows 42..48)
    np.save(tmp_path / "x.npy", x)
    mm = spy(tmp_path / "x.npy")
    with raises(ValueError, "train: array 0 ('x') contains NaN or Inf (first at row 45)"):
        check_arrays([mm], [X], chunk_rows=7)
    assert SpyMemmap.reads == [slice(s, s + 7) for s in range(0, 49, 7)]
    # stops at the chunk holding the first problem
    x[45, 2] = 0.0
    x[9, 0] = np.inf
    np.save(tmp_path / "x.npy", x)
    mm = spy(tmp_path / "x.npy")
    with raises(ValueError, "train: array 0 ('x') contains NaN or Inf (first at row 9)"):
        check_arrays([mm], [X], chunk_rows=7)
    assert SpyMemmap.reads == [slice(0, 7), slice(7, 14)]
    # out-of-range labels found in a later chunk; integral float labels accepted
    labels = np.arange(30) % 10.0
    labels[29] = 12.0
    np.save(tmp_path / "y.npy", labels)
    with raises(ValueError, "train: array 0 ('y') has labels out of range: found 12, allowed 0..9"):
        check_arrays([np.load(tmp_path / "y.npy", mmap_mode="r")], [Y], chunk_rows=4)
    labels[29] = 9.0
    np.save(tmp_path / "y.npy", labels)
    out = check_arrays([np.load(tmp_path / "y.npy", mmap_mode="r")], [Y], chunk_rows=4)
    assert isinstance(out[0], np.memmap)


def test_dataset_uses_module_chunk_size(tmp_path, monkeypatch):
    x = np.zeros((20, 8))
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(data_module, "CHUNK_ROWS", 6)
    mm = spy(tmp_path / "x.npy")
    Dataset([mm], [X], batch_size=4)
    assert SpyMemmap.reads == [slice(0, 6), slice(6, 12), slice(12, 18), slice(18, 24)]


# ------------------------------------------------------------ array batches


@pytest.mark.parametrize("n, batch_size", [(10, 4), (12, 4), (7, 10), (1, 1)])
def test_batches_cover_every_example_once(n, batch_size):
    rows = np.arange(n)
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    for shuffle in (False, True):
        dataset = Dataset(
            [rows.astype(float)[:, None], rows], batch_size=batch_size, shuffle=shuffle, seed=5
        )
        assert len(dataset) == len(sizes) == dataset.batches_per_epoch
        assert dataset.n_examples == n
        for epoch in range(3):
            assert (dataset.epoch, dataset.batch_index) == (epoch, 0)
            batches = draw(dataset, len(sizes))
            assert [len(b[1]) for b in batches] == sizes  # last partial batch kept
            order = np.concatenate([b[1] for b in batches])
            expected = np.random.default_rng([5, epoch]).permutation(n) if shuffle else rows
            np.testing.assert_array_equal(order, expected)
            np.testing.assert_array_equal(np.concatenate([b[0][:, 0] for b in batches]), expected)
            assert sorted(order) == list(rows)
        assert dataset.epoch == 3


def test_epoch_and_batch_index_advance():
    dataset = Dataset([np.arange(10)], batch_size=4, seed=0)
    positions = []
    for _ in range(7):
        dataset.next_batch()
        positions.append((dataset.epoch, dataset.batch_index, dataset.drawn))
    assert positions == [
        (0, 1, 1),
        (0, 2, 2),
        (1, 0, 3),
        (1, 1, 4),
        (1, 2, 5),
        (2, 0, 6),
        (2, 1, 7),
    ]


def test_shuffle_depends_on_seed_and_epoch():
    a = Dataset([np.arange(50)], batch_size=50, seed=1)
    b = Dataset([np.arange(50)], batch_size=50, seed=2)
    e0, e1 = a.next_batch()[0], a.next_batch()[0]
    assert not np.array_equal(e0, e1)
    assert not np.array_equal(e0, b.next_batch()[0])


def test_dtype_casting():
    x = np.arange(12.0).reshape(6, 2)  # float64
    y = np.array([0.0, 1.0, 2.0, 2.0, 1.0, 0.0])  # integral floats as labels
    specs = [ArraySpec("x", 2, features=2), ArraySpec("y", 1, kind="int", high=2, dtype="int32")]
    dataset = Dataset([x, y], specs, batch_size=4, shuffle=False)
    xb, yb = dataset.next_batch()
    assert xb.dtype == np.float32 and yb.dtype == np.int32
    np.testing.assert_array_equal(xb, x[:4].astype(np.float32))
    assert yb.tolist() == [0, 1, 2, 2]
    assert x.dtype == np.float64  # the source is untouched
    xb, yb = next(iter(dataset.iter_epoch()))
    assert xb.dtype == np.float32 and yb.dtype == np.int32
    plain = Dataset([x, y], batch_size=4).next_batch()
    assert plain[0].dtype == np.float64 and plain[1].dtype == np.float64


def test_dataset_checks_arrays_on_construction():
    x, y = xy()
    y[0] = 10
    with raises(ValueError, "valid: array 1 ('y') has labels out of range: found 10, allowed 0..9"):
        Dataset([x, y], SPECS, name="valid")


def test_iter_epoch_keeps_training_position():
    dataset = Dataset([np.arange(10)], batch_size=4, seed=3)
    draw(dataset, 2)
    before = dataset.state()
    walked = [b[0].tolist() for b in dataset.iter_epoch()]
    assert walked == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b[0]) for b in dataset.iter_epoch(batch_size=3)] == [3, 3, 3, 1]
    assert dataset.state() == before
    with raises(ValueError, "batch_size: expected an integer >= 1, got 0"):
        dataset.iter_epoch(batch_size=0)
    follow = dataset.next_batch()[0]
    np.testing.assert_array_equal(follow, np.random.default_rng([3, 0]).permutation(10)[8:])


# ------------------------------------------------------------------ memmaps


def test_memmap_source_matches_in_memory(tmp_path):
    x, y = xy(n=37, seed=2)
    x = x.astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mx = spy(tmp_path / "x.npy")
    my = np.load(tmp_path / "y.npy", mmap_mode="r")
    mapped = Dataset([mx, my], SPECS, batch_size=8, seed=4)
    memory = Dataset([x, y], SPECS, batch_size=8, seed=4)
    assert isinstance(mapped.arrays[0], np.memmap) and isinstance(mapped.arrays[1], np.memmap)
    SpyMemmap.reads = []
    batches = draw(mapped, 12)
    assert_same_batches(batches, draw(memory, 12))
    for batch in batches:
        assert all(type(a) is np.ndarray for a in batch)  # read into memory, not views of the file
        assert batch[0].dtype == np.float32
    # each batch is one read of at most batch_size rows, with indices in file order
    assert len(SpyMemmap.reads) == 12
    for key in SpyMemmap.reads:
        assert len(key) <= 8
        assert np.all(np.diff(key) > 0)
    no_shuffle = Dataset([mx, my], batch_size=8, shuffle=False)
    SpyMemmap.reads = []
    first = no_shuffle.next_batch()
    assert SpyMemmap.reads == [slice(0, 8)]
    assert type(first[0]) is np.ndarray and first[0].dtype == np.float64
    np.testing.assert_array_equal(first[0], x[:8])


# -------------------------------------------------------------- callables


def sampler(seed):
    rng = np.random.default_rng(seed)

    def sample():
        return [rng.normal(size=(5, 8)), rng.integers(0, 10, 5)]

    return sample


def test_callable_source():
    dataset = Dataset(sampler(0), SPECS, epoch_size=3)
    assert len(dataset) == 3 and dataset.n_examples is None
    reference = sampler(0)
    for epoch in range(2):
        for index in range(3):
            assert (dataset.epoch, dataset.batch_index) == (epoch, index)
            xb, yb = dataset.next_batch()
            rx, ry = reference()
            np.testing.assert_array_equal(xb, rx.astype(np.float32))
            assert xb.dtype == np.float32 and yb.dtype == np.int64
    assert dataset.epoch == 2 and not dataset.exhausted
    single = Dataset(lambda: np.ones((4, 2)), epoch_size=1)
    assert single.next_batch()[0].shape == (4, 2)


def test_callable_batches_are_checked():
    dataset = Dataset(lambda: [np.zeros((5, 3)), np.zeros(5, int)], SPECS, epoch_size=2)
    with raises(ValueError, "train batch 0: array 0 ('x') has 3 features; the model's input has 8"):
        dataset.next_batch()
    dataset = Dataset(lambda: {"x": 1}, epoch_size=2)
    with raises(
        TypeError, "train batch 0: expected a list or tuple of arrays, or one array; got dict"
    ):
        dataset.next_batch()


# -------------------------------------------------------------- iterables


def batch_list(k=3):
    return [[np.full((i + 1, 8), float(i)), np.full(i + 1, i)] for i in range(k)]


def test_generator_ends_training():
    dataset = Dataset((b for b in batch_list()), SPECS)
    assert dataset.one_shot and dataset.batches_per_epoch is None and dataset.n_examples is None
    with raises(
        TypeError,
        "train: the number of batches per epoch of a one-shot iterator is unknown; give epoch_size",
    ):
        len(dataset)
    assert bool(dataset)
    sizes = []
    while not dataset.exhausted:
        sizes.append(len(dataset.next_batch()[1]))
    assert sizes == [1, 2, 3] and dataset.epoch == 1 and dataset.batch_index == 0
    with raises(
        RuntimeError,
        "train: the one-shot iterator ran out after 3 batches; pass a list, "
        "a re-iterable or a callable with epoch_size to train longer",
    ):
        dataset.next_batch()
    with raises(
        TypeError,
        "train: a one-shot iterator cannot be walked again without using up "
        "its batches; pass a list of batches or a re-iterable",
    ):
        dataset.iter_epoch()


def test_generator_with_epoch_size():
    dataset = Dataset(iter(batch_list(5)), epoch_size=2)
    assert len(dataset) == 2
    seen = []
    while not dataset.exhausted:
        seen.append((dataset.next_batch()[1][0], dataset.epoch, dataset.batch_index))
    assert seen == [(0, 0, 1), (1, 1, 0), (2, 1, 1), (3, 2, 0), (4, 2, 1)]


def test_empty_iterable():
    with raises(
        ValueError,
        "train: the iterable gave no batch after 0; expected at least one batch per pass",
    ):
        Dataset(iter([])).next_batch()


def test_reiterable_list_restarts_each_epoch():
    dataset = Dataset(batch_list(3), SPECS)
    assert not dataset.one_shot and len(dataset) == 3
    labels = [(dataset.next_batch()[1][0], dataset.epoch) for _ in range(7)]
    assert labels == [(0, 0), (1, 0), (2, 1), (0, 1), (1, 1), (2, 2), (0, 2)]
    assert dataset.next_batch()[0].dtype == np.float32
    assert [b[1][0] for b in dataset.iter_epoch()] == [0, 1, 2]


class Reiterable:
    """An object whose __iter__ returns a fresh generator each time; no len()."""

    def __init__(self, k):
        self.k = k

    def __iter__(self):
        return (b for b in batch_list(self.k))


def test_reiterable_object_learns_its_epoch_length():
    dataset = Dataset(Reiterable(3))
    assert dataset.batches_per_epoch is None and not dataset.one_shot
    labels = [(dataset.next_batch()[1][0], dataset.epoch) for _ in range(4)]
    assert labels == [(0, 0), (1, 0), (2, 1), (0, 1)]
    assert len(dataset) == 3
    wrapped = Dataset(Reiterable(3), epoch_size=2)
    labels = [(wrapped.next_batch()[1][0], wrapped.epoch) for _ in range(5)]
    assert labels == [(0, 0), (1, 1), (2, 1), (0, 2), (1, 2)]


# ------------------------------------------------------------------ resume


def resume_parity(make, k, m):
    original = make()
    draw(original, k)
    state = json.loads(json.dumps(original.state()))
    rest = draw(original, m)
    restored = make()
    restored.set_state(state)
    assert restored.state() == state
    assert_same_batches(draw(restored, m), rest)
    assert restored.state() == original.state()


@pytest.mark.parametrize("k, m", [(0, 5), (3, 9), (4, 4), (11, 6)])
def test_resume_arrays(k, m):
    x, y = xy(n=30)
    resume_parity(lambda: Dataset([x, y], SPECS, batch_size=7, seed=9), k, m)
    resume_parity(lambda: Dataset([x, y], batch_size=7, shuffle=False), k, m)


def test_resume_memmaps(tmp_path):
    x, y = xy(n=30)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)

    def make():
        arrays = [np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in "xy"]
        return Dataset(arrays, SPECS, batch_size=4, seed=2)

    resume_parity(make, 10, 7)


def test_resume_callables():
    resume_parity(lambda: Dataset(sampler(1), SPECS, epoch_size=4), 6, 5)
    # batches drawn for validation count as calls too
    original = Dataset(sampler(1), epoch_size=2)
    draw(original, 1)
    list(original.iter_epoch())
    state = original.state()
    assert state["calls"] == 3
    restored = Dataset(sampler(1), epoch_size=2)
    restored.set_state(state)
    assert_same_batches(draw(restored, 3), draw(original, 3))
    with raises(
        ValueError,
        "state: the callable was called 3 times when saved and 6 times here; "
        "a callable cannot be rewound",
    ):
        original.set_state(state)


def test_resume_reiterables():
    resume_parity(lambda: Dataset(batch_list(4), SPECS), 5, 6)
    resume_parity(lambda: Dataset(Reiterable(4), epoch_size=3), 5, 6)


def test_resume_one_shot():
    dataset = Dataset(iter(batch_list(4)))
    draw(dataset, 2)
    state = dataset.state()
    dataset.set_state(state)  # its own position: fine
    fresh = Dataset(iter(batch_list(4)))
    with raises(
        ValueError,
        "state: a one-shot iterator cannot be moved to batch 2; it is at batch 0. "
        "Pass a list, a re-iterable or a callable to resume",
    ):
        fresh.set_state(state)


def test_state_mismatches():
    x, y = xy(n=30)
    state = Dataset([x, y], batch_size=7, seed=9).state()
    json.dumps(state)
    assert {"epoch", "batch_index", "seed", "drawn"} <= set(state)
    with raises(ValueError, "state: saved with batch_size 7; this dataset (train) has 8"):
        Dataset([x, y], batch_size=8).set_state(state)
    with raises(ValueError, "state: saved with n_examples 30; this dataset (train) has 29"):
        Dataset([x[:29], y[:29]], batch_size=7).set_state(state)
    with raises(
        ValueError, "state: saved with source 'arrays'; this dataset (train) has 'callable'"
    ):
        Dataset(sampler(0), epoch_size=3).set_state(state)
    with raises(
        ValueError,
        "state: missing batch_index; expected keys name, source, epoch, batch_index, drawn, "
        "seed, shuffle, batch_size, n_examples, epoch_size, batches_per_epoch, calls, "
        "iter_position, exhausted",
    ):
        Dataset([x, y], batch_size=7).set_state(
            {k: v for k, v in state.items() if k != "batch_index"}
        )
    adopted = Dataset([x, y], batch_size=7, seed=1)
    adopted.next_batch()  # caches the permutation of seed 1
    adopted.set_state(state)
    assert adopted.seed == 9
    np.testing.assert_array_equal(
        adopted.next_batch()[1], y[np.random.default_rng([9, 0]).permutation(30)[:7]]
    )


# ---------------------------------------------------------- bad arguments


def test_bad_arguments():
    x = np.zeros((4, 2))
    with raises(ValueError, "batch_size: expected an integer >= 1, got 0"):
        Dataset([x], batch_size=0)
    with raises(TypeError, "batch_size: expected an integer >= 1, got 2.5"):
        Dataset([x], batch_size=2.5)
    with raises(TypeError, "batch_size: expected an integer >= 1, got True"):
        Dataset([x], batch_size=True)
    with raises(ValueError, "seed: expected an integer >= 0, got -1"):
        Dataset([x], seed=-1)
    with raises(TypeError, "shuffle: expected True or False, got 'yes'"):
        Dataset([x], shuffle="yes")
    with raises(
        ValueError, "epoch_size: a callable source needs the number of batches per epoch, got None"
    ):
        Dataset(lambda: [x])
    with raises(
        ValueError,
        "epoch_size: only for a callable or iterable source; an epoch over arrays "
        "is one pass over them, got epoch_size=3",
    ):
        Dataset([x], epoch_size=3)
    with raises(ValueError, "train: got an empty list; expected [x, y, ...]"):
        Dataset([])
    with raises(ValueError, "train: arrays are empty (0 examples); expected at least 1"):
        Dataset([x[:0]])
    with raises(ValueError, "train: arrays have different lengths: [0] 4, [1] 3"):
        Dataset([x, x[:3]])
    # Python lists of numbers are array data (issue 9), so the lengths disagree
    with raises(ValueError, "train: arrays have different lengths: [0] 4, [1] 2"):
        Dataset([x, [1, 2]])
    with raises(
        TypeError,
        "train: a list source holds arrays [x, y, ...] or batches (lists of "
        "arrays); got items of types list, str",
    ):
        Dataset([["a"], "b"])
    for source, kind in [(3, "int"), ({"x": x}, "dict"), ("x.npy", "str")]:
        with raises(
            TypeError,
            "train: expected a list of arrays [x, y, ...], a callable returning "
            f"batches or an iterable of batches; got {kind}",
        ):
            Dataset(source)


def test_nested_python_lists_are_array_data_not_batches():
    # issue 9: [X.tolist(), y.tolist()] was read as an iterable of 64 batches
    x = np.arange(12.0).reshape(6, 2)
    y = [0, 1, 2, 0, 1, 2]
    data = Dataset([x.tolist(), y], batch_size=4, shuffle=False)
    assert data.kind == "arrays" and data.n_examples == 6
    xb, yb = data.next_batch()
    np.testing.assert_array_equal(xb, x[:4])
    np.testing.assert_array_equal(yb, y[:4])
