"""Learning-rate schedules against closed forms written out here."""

import json
import math

import pytest

from trainkit.training import schedules
from trainkit.training.schedules import Constant, Cosine, Exponential, Plateau, Schedule, Step

STEPS = range(0, 60)


def close(a, b):
    return a == pytest.approx(b, rel=1e-12, abs=1e-15)


def test_names():
    assert schedules.names() == ["constant", "cosine", "exponential", "plateau", "step"]


def test_constant():
    s = schedules.build(None, 0.03)
    assert isinstance(s, Constant)
    assert [s.value(i) for i in STEPS] == [0.03] * len(STEPS)
    assert schedules.build("constant", 0.03).config() == s.config()


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (7, 0.1), (10, 1.0)])
def test_step_closed_form(step_size, gamma):
    s = schedules.build(dict(name="step", step_size=step_size, gamma=gamma), 0.2)
    for i in STEPS:
        assert close(s.value(i), 0.2 * gamma ** math.floor(i / step_size))


def test_step_default_gamma_is_pytorch_steplr():
    s = schedules.build(dict(name="step", step_size=3), 1.0)
    assert [s.value(i) for i in range(7)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])


@pytest.mark.parametrize("decay_steps, gamma", [(1, 0.9), (10, 0.5), (2.5, 0.1)])
def test_exponential_closed_form(decay_steps, gamma):
    s = schedules.build(dict(name="exponential", decay_steps=decay_steps, gamma=gamma), 0.1)
    for i in STEPS:
        assert close(s.value(i), 0.1 * math.exp(i / decay_steps * math.log(gamma)))


@pytest.mark.parametrize("total, min_lr", [(1, 0.0), (20, 0.0), (37, 1e-3)])
def test_cosine_closed_form(total, min_lr):
    lr = 0.1
    s = schedules.build(dict(name="cosine", min_lr=min_lr), lr, total_steps=total)
    for i in STEPS:
        t = min(i, total)
        expected = min_lr + (lr - min_lr) * (1 + math.cos(math.pi * t / total)) / 2
        assert close(s.value(i), expected)
    assert s.value(0) == lr
    assert close(s.value(total), min_lr)
    assert close(s.value(10 * total), min_lr)


def test_cosine_total_steps_in_spec_beats_the_trainers():
    s = schedules.build(dict(name="cosine", total_steps=10), 1.0, total_steps=1000)
    assert s.total_steps == 10


def test_warmup_then_step_starts_its_clock_after_warmup():
    lr, w = 0.5, 4
    s = schedules.build(dict(name="step", step_size=3, gamma=0.5), lr, warmup=w)
    got = [s.value(i) for i in range(12)]
    ramp = [lr * (i + 1) / w for i in range(w)]
    decay = [lr * 0.5 ** ((i - w) // 3) for i in range(w, 12)]
    assert got == pytest.approx(ramp + decay, rel=1e-12)
    assert got[:5] == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5])


@pytest.mark.parametrize("spec", ["constant", dict(name="exponential", decay_steps=5)])
def test_warmup_composes(spec):
    lr, w = 0.01, 10
    plain = schedules.build(spec, lr)
    warm = schedules.build(spec, lr, warmup=w)
    for i in range(w):
        assert close(warm.value(i), plain.value(0) * (i + 1) / w)
    for i in range(w, 50):
        assert close(warm.value(i), plain.value(i - w))


def test_warmup_cosine_total_steps_counts_warmup():
    lr, w, total = 1.0, 5, 25
    s = schedules.build("cosine", lr, warmup=w, total_steps=total)
    for i in range(40):
        if i < w:
            expected = lr * (i + 1) / w
        else:
            t = min(i - w, total - w)
            expected = lr * (1 + math.cos(math.pi * t / (total - w))) / 2
        assert close(s.value(i), expected)
    assert s.value(w) == lr
    assert s.value(total) == 0.0


def test_warmup_plateau_scales_the_current_rate():
    s = Plateau(1.0, factor=0.5, patience=0, warmup=4)
    s.observe(1.0)
    s.observe(1.0)  # one bad validation > patience 0: halve
    assert [s.value(i) for i in range(6)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]


# Hand-worked ReduceLROnPlateau(mode='min', threshold_mode='rel', factor=0.5,
# patience=2, threshold=0.1, cooldown=1, min_lr=0.1): "better" means
# loss < best * 0.9. Each row: validation loss, the rate after observing it, and why.
PLATEAU_RUN = [
    (10.0, 1.0),  # best 10
    (9.5, 1.0),  # not < 9.0: bad 1
    (8.9, 1.0),  # < 9.0: best 8.9, bad 0
    (8.5, 1.0),  # not < 8.01: bad 1
    (8.2, 1.0),  # bad 2
    (8.0, 1.0),  # < 8.01: best 8.0, bad 0
    (math.nan, 1.0),  # NaN is never better: bad 1
    (7.5, 1.0),  # not < 7.2: bad 2
    (7.5, 0.5),  # bad 3 > patience: halve, cooldown 1, bad 0
    (7.5, 0.5),  # bad 1, but in cooldown: cooldown 0, bad 0
    (7.5, 0.5),  # bad 1
    (7.5, 0.5),  # bad 2
    (7.5, 0.25),  # bad 3: halve, cooldown 1
    (7.0, 0.25),  # < 7.2: best 7.0; cooldown 0
    (7.0, 0.25),  # bad 1
    (7.0, 0.25),  # bad 2
    (7.0, 0.125),  # bad 3: halve
    (7.0, 0.125),  # cooldown
    (7.0, 0.125),  # bad 1
    (7.0, 0.125),  # bad 2
    (7.0, 0.1),  # bad 3: max(0.0625, min_lr 0.1)
    (7.0, 0.1),  # cooldown
    (7.0, 0.1),  # bad 1
    (7.0, 0.1),  # bad 2
    (7.0, 0.1),  # bad 3: already at min_lr, stays
]


def make_plateau():
    spec = dict(name="plateau", factor=0.5, patience=2, threshold=0.1, cooldown=1, min_lr=0.1)
    return schedules.build(spec, 1.0)


def test_plateau_hand_worked_sequence():
    s = make_plateau()
    assert s.value(0) == 1.0
    for i, (loss, lr) in enumerate(PLATEAU_RUN):
        s.observe(loss)
        assert s.value(100 + i) == lr, (i, loss)
    assert s.state() == {
        "best": 7.0,
        "bad_validations": 0,
        "cooldown_left": 1,
        "current_lr": 0.1,
    }


def test_plateau_pytorch_defaults():
    s = schedules.build("plateau", 1.0)
    assert (s.factor, s.patience, s.threshold, s.cooldown, s.min_lr, s.eps) == (
        0.1,
        10,
        1e-4,
        0,
        0.0,
        1e-8,
    )
    s.observe(1.0)
    for _ in range(10):
        s.observe(0.99995)  # within the 1e-4 relative threshold: not better
        assert s.value(0) == 1.0
    s.observe(1.0)
    assert s.value(0) == pytest.approx(0.1)


def test_plateau_eps_skips_tiny_reductions():
    s = Plateau(1e-9, factor=0.5, patience=0)
    s.observe(1.0)
    s.observe(1.0)
    assert s.value(0) == 1e-9


def test_stateless_schedules_have_empty_state():
    for spec in [
        "constant",
        dict(name="step", step_size=2),
        dict(name="exponential", decay_steps=3),
    ]:
        s = schedules.build(spec, 0.1, total_steps=10)
        assert s.state() == {}
        s.set_state({})
        with pytest.raises(ValueError, match=r"takes no state; got \{'x': 1\}"):
            s.set_state({"x": 1})
    assert schedules.build("cosine", 0.1, total_steps=10).state() == {}


def test_plateau_state_resume_is_bitwise_identical():
    losses = [loss for loss, _ in PLATEAU_RUN]
    full = make_plateau()
    expected = []
    for loss in losses:
        full.observe(loss)
        expected.append(full.value(7))
    for cut in [0, 1, 8, 9, 13, 20]:
        first = make_plateau()
        for loss in losses[:cut]:
            first.observe(loss)
        saved = json.loads(json.dumps(first.config())), json.loads(json.dumps(first.state()))
        resumed = schedules.from_config(saved[0])
        resumed.set_state(saved[1])
        got = []
        for loss in losses[cut:]:
            resumed.observe(loss)
            got.append(resumed.value(7))
        assert got == expected[cut:]


def test_fresh_plateau_state_is_strict_json():
    state = make_plateau().state()
    assert state["best"] is None
    json.dumps(state, allow_nan=False)


def test_plateau_set_state_rejects_malformed():
    s = make_plateau()
    with pytest.raises(ValueError, match="plateau: state must be a dict with keys bad_valid"):
        s.set_state({"best": 1.0})
    bad = dict(s.state(), bad_validations=-1)
    with pytest.raises(ValueError, match="bad_validations must be an integer >= 0; got -1"):
        s.set_state(bad)


def test_stateless_resume_matches():
    spec = dict(name="exponential", decay_steps=3, gamma=0.5)
    a = schedules.build(spec, 0.1, warmup=5)
    b = schedules.from_config(json.loads(json.dumps(a.config())))
    b.set_state(json.loads(json.dumps(a.state())))
    assert [a.value(i) for i in range(100)] == [b.value(i) for i in range(100)]


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(0.1),
        Constant(0.1, warmup=3),
        Step(0.1, step_size=4, gamma=0.5, warmup=2),
        Exponential(0.1, decay_steps=2.5, gamma=0.3),
        Exponential(0.1, decay_steps=10),
        Cosine(0.1, total_steps=50, min_lr=1e-4, warmup=5),
        Plateau(0.1, factor=0.2, patience=3, threshold=0.01, cooldown=2, min_lr=1e-6, eps=0.0),
    ],
)
def test_config_round_trip(schedule):
    config = schedule.config()
    again = schedules.from_config(json.loads(json.dumps(config)))
    assert type(again) is type(schedule)
    assert again.config() == config
    assert repr(again) == repr(schedule)
    assert [again.value(i) for i in range(60)] == [schedule.value(i) for i in range(60)]


def test_build_passes_instances_through():
    s = Cosine(0.5, total_steps=10)
    assert schedules.build(s, 0.1, warmup=3, total_steps=99) is s


def test_a_user_schedule_composes_with_warmup():
    class Halving(Schedule):
        def rate(self, step):
            return self.learning_rate / 2**step

    s = Halving(1.0, warmup=2)
    assert [s.value(i) for i in range(5)] == [0.5, 1.0, 1.0, 0.5, 0.25]


# ---- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, error, message",
    [
        (
            "cosin",
            ValueError,
            r"^lr_schedule: unknown schedule 'cosin'; choose from constant, cosine, "
            r"exponential, plateau, step \(closest: cosine\)$",
        ),
        (
            dict(name="stepp", step_size=3),
            ValueError,
            r"^lr_schedule: unknown schedule 'stepp'; .*\(closest: step\)$",
        ),
        (
            dict(name="cosine", min_rate=1e-5, total_steps=10),
            TypeError,
            r"^lr_schedule: cosine takes total_steps, min_lr; got 'min_rate' \(closest: min_lr\)$",
        ),
        (
            dict(name="step", step_size=3, gama=0.5),
            TypeError,
            r"^lr_schedule: step takes step_size, gamma; got 'gama' \(closest: gamma\)$",
        ),
        (
            dict(name="constant", gamma=0.5),
            TypeError,
            r"^lr_schedule: constant takes no arguments; got 'gamma'$",
        ),
        (
            dict(name="step", step_size=3, learning_rate=0.5),
            TypeError,
            r"^lr_schedule: 'learning_rate' is a training option, not a schedule argument; "
            r"step takes step_size, gamma$",
        ),
        (
            dict(step_size=3),
            TypeError,
            r"^lr_schedule: a schedule dict needs a 'name' \(constant, cosine, exponential, "
            r"plateau, step\); got \{'step_size': 3\}$",
        ),
        (
            3,
            TypeError,
            r"^lr_schedule: expected None, a schedule name .* or a Schedule; got 3$",
        ),
        (
            "step",
            TypeError,
            # the hint is spelled for Python and TOML alike (issue 9)
            r"^lr_schedule: step needs step_size; give the schedule as a table \(dict\) with "
            r"name 'step' and step_size$",
        ),
        (
            "exponential",
            TypeError,
            r"^lr_schedule: exponential needs decay_steps; ",
        ),
        (
            "cosine",
            TypeError,
            r"^lr_schedule: cosine needs total_steps, the number of updates \(warmup included\), "
            r"and the training length is not known; give the schedule its total_steps, or set "
            r"max_updates or max_epochs$",
        ),
    ],
)
def test_build_errors(spec, error, message):
    with pytest.raises(error, match=message):
        schedules.build(spec, 0.1)


RANGE_ERRORS = [  # (spec, message after "lr_schedule: ")
    (dict(name="step", step_size=0), r"step: step_size must be a positive integer; got 0"),
    (dict(name="step", step_size=2.5), r"step: step_size must be a positive integer; got 2\.5"),
    (dict(name="step", step_size=2, gamma=0), r"step: gamma must be in \(0, 1\]; got 0\.0"),
    (dict(name="step", step_size=2, gamma=1.5), r"step: gamma must be in \(0, 1\]; got 1\.5"),
    (
        dict(name="exponential", decay_steps=0),
        r"exponential: decay_steps must be in \(0, inf\); got 0\.0",
    ),
    (
        dict(name="exponential", decay_steps=5, gamma=2),
        r"exponential: gamma must be in \(0, 1\]; got 2\.0",
    ),
    (dict(name="cosine", total_steps=0), r"cosine: total_steps must be a positive integer; got 0"),
    (
        dict(name="cosine", total_steps=10, min_lr=0.5),
        r"cosine: min_lr must be in \[0, 0\.1\]; got 0\.5",
    ),
    (
        dict(name="cosine", total_steps=10, min_lr=-1),
        r"cosine: min_lr must be in \[0, 0\.1\]; got -1\.0",
    ),
    (dict(name="plateau", factor=1), r"plateau: factor must be in \(0, 1\); got 1\.0"),
    (dict(name="plateau", factor=0.0), r"plateau: factor must be in \(0, 1\); got 0\.0"),
    (dict(name="plateau", patience=-1), r"plateau: patience must be an integer >= 0; got -1"),
    (dict(name="plateau", cooldown=1.5), r"plateau: cooldown must be an integer >= 0; got 1\.5"),
    (dict(name="plateau", threshold=-0.1), r"plateau: threshold must be in \[0, inf\); got -0\.1"),
    (dict(name="plateau", min_lr=math.nan), r"plateau: min_lr must be in \[0, inf\); got nan"),
]


@pytest.mark.parametrize("spec, message", RANGE_ERRORS)
def test_build_range_errors(spec, message):
    with pytest.raises(ValueError, match=f"^lr_schedule: {message}$"):
        schedules.build(spec, 0.1)


def test_build_type_errors():
    with pytest.raises(
        TypeError, match=r"^lr_schedule: plateau: factor must be a number; got 'x'$"
    ):
        schedules.build(dict(name="plateau", factor="x"), 0.1)


def test_build_checks_learning_rate_and_warmup():
    with pytest.raises(ValueError, match=r"^learning_rate: must be in \[0, inf\); got -0\.1$"):
        schedules.build("constant", -0.1)
    with pytest.raises(ValueError, match=r"^lr_warmup: must be an integer >= 0; got -3$"):
        schedules.build("constant", 0.1, warmup=-3)
    with pytest.raises(ValueError, match=r"^lr_warmup: must be an integer >= 0; got 0\.5$"):
        schedules.build("constant", 0.1, warmup=0.5)
    with pytest.raises(
        ValueError,
        match=r"^lr_schedule: cosine: total_steps must exceed warmup \(100\); got 100 "
        r"\(total_steps counts every update, warmup included\)$",
    ):
        schedules.build("cosine", 0.1, warmup=100, total_steps=100)


def test_integral_floats_count_as_step_counts():
    s = schedules.build(dict(name="step", step_size=1e3), 0.1, warmup=1e1)
    assert (s.step_size, s.warmup) == (1000, 10)
    assert type(s.step_size) is int


def test_value_rejects_negative_and_fractional_steps():
    s = Constant(0.1)
    with pytest.raises(ValueError, match=r"^constant: step must be >= 0; got -1$"):
        s.value(-1)
    with pytest.raises(TypeError):
        s.value(1.5)


def test_constructor_errors_name_the_schedule():
    with pytest.raises(ValueError, match=r"^step: step_size must be a positive integer; got 0$"):
        Step(0.1, step_size=0)
    with pytest.raises(ValueError, match=r"^constant: learning_rate must be in \[0, inf\)"):
        Constant(-1.0)


def test_from_config_errors():
    with pytest.raises(TypeError, match=r"^from_config: expected a dict with a 'name'; got 3$"):
        schedules.from_config(3)
    with pytest.raises(ValueError, match=r"^from_config: unknown schedule 'cosin'"):
        schedules.from_config({"name": "cosin"})
    with pytest.raises(
        TypeError,
        match=r"^from_config: step takes step_size, gamma; got 'gama' \(closest: gamma\)$",
    ):
        schedules.from_config({"name": "step", "learning_rate": 0.1, "step_size": 2, "gama": 1})


def test_register_rejects_duplicates_and_non_schedules():
    with pytest.raises(ValueError, match="schedule 'step' is already registered"):
        schedules.register("step")(type("Other", (Schedule,), {}))
    with pytest.raises(TypeError, match="is not a Schedule subclass"):
        schedules.register("other")(int)
