"""The regularizer registry: names, aliases, build, config round-trips, from_kwargs.

A new regularizer is tested here by being registered: every registered name
must build, round-trip through its config, and have its arguments covered by
``NONDEFAULT`` below.
"""

import inspect

import numpy as np
import pytest

import regularizers
from regularizers import registry
from regularizers.base import Regularizer

DESIGN_NAMES = {
    "weight_l2": regularizers.WeightL2,
    "weight_l1": regularizers.WeightL1,
    "hidden_l1": regularizers.HiddenL1,
    "hidden_l2": regularizers.HiddenL2,
    "recurrent_norm": regularizers.RecurrentNorm,
    "recurrent_state": regularizers.RecurrentState,
    "contractive": regularizers.Contractive,
    "dropout": regularizers.Dropout,
    "input_dropout": regularizers.InputDropout,
    "hidden_dropout": regularizers.HiddenDropout,
    "output_dropout": regularizers.OutputDropout,
    "noise": regularizers.Noise,
    "input_noise": regularizers.InputNoise,
    "hidden_noise": regularizers.HiddenNoise,
    "output_noise": regularizers.OutputNoise,
    "max_norm": regularizers.MaxNorm,
    "max_gradient_norm": regularizers.MaxGradientNorm,
    "max_total_gradient_norm": regularizers.MaxTotalGradientNorm,
    "max_gradient_elem": regularizers.MaxGradientElem,
}
ALIASES = {
    "weight_decay": "weight_l2",
    "weight_sparsity": "weight_l1",
    "hidden_sparsity": "hidden_l1",
}
PATTERN_REQUIRED = {"noise", "dropout"}

# A non-default value for every constructor argument any regularizer takes.
NONDEFAULT = {
    "weight": 0.25,
    "pattern": ["hid*:out", "out.w"],
    "seed": 7,
    "squared": True,
    "wrt": "x",
    "norm_axes": (0,),
}


def _canonical_names():
    return [n for n in regularizers.names() if regularizers.canonical(n) == n]


def test_names_are_sorted_and_hold_the_design_list():
    names = regularizers.names()
    assert names == sorted(names)
    assert set(DESIGN_NAMES) | set(ALIASES) <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(DESIGN_NAMES))
def test_canonical_names_map_to_their_class(name):
    assert regularizers.lookup(name) is DESIGN_NAMES[name]
    assert DESIGN_NAMES[name].name == name
    assert regularizers.canonical(name) == name


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_aliases_map_to_the_canonical_class(alias):
    target = ALIASES[alias]
    assert regularizers.canonical(alias) == target
    assert regularizers.lookup(alias) is DESIGN_NAMES[target]
    assert alias in regularizers.aliases(target)
    reg = regularizers.build(alias, weight=0.5)
    assert type(reg) is DESIGN_NAMES[target]
    assert reg.name == target and reg.label == alias
    assert reg.config() == regularizers.build(target, weight=0.5).config()


@pytest.mark.parametrize("name", regularizers.names())
def test_every_registered_name_builds(name):
    kwargs = {"weight": 0.5}
    if regularizers.canonical(name) in PATTERN_REQUIRED:
        kwargs["pattern"] = "hid1:out"
    reg = regularizers.build(name, **kwargs)
    assert isinstance(reg, regularizers.lookup(name))
    assert isinstance(reg, Regularizer)
    assert reg.weight == 0.5
    assert reg.name == regularizers.canonical(name)


@pytest.mark.parametrize("name", regularizers.names())
def test_config_round_trips_with_non_default_arguments(name):
    args = regularizers.arguments(name)
    assert list(args)[:2] == ["weight", "pattern"]
    assert args["weight"] is inspect.Parameter.empty
    missing = set(args) - set(NONDEFAULT)
    assert not missing, f"add non-default values for {missing} to NONDEFAULT"
    kwargs = {k: NONDEFAULT[k] for k in args}
    reg = regularizers.build(name, **kwargs)
    config = reg.config()
    expected = dict(kwargs)
    assert config == {k: expected[k] for k in args}
    again = regularizers.build(reg.name, **config)
    assert type(again) is type(reg)
    assert again.config() == config
    assert repr(again) == repr(reg)


@pytest.mark.parametrize("name", _canonical_names())
def test_config_round_trips_with_defaults(name):
    kwargs = {"weight": 0.5}
    if name in PATTERN_REQUIRED:
        kwargs["pattern"] = "in:out"
    reg = regularizers.build(name, **kwargs)
    defaults = {k: v for k, v in regularizers.arguments(name).items() if k not in kwargs}
    assert reg.config() == {**kwargs, **defaults}
    assert regularizers.build(name, **reg.config()).config() == reg.config()


def test_repr():
    assert repr(regularizers.build("weight_decay", weight=1e-4, pattern="hid*.w")) == (
        "weight_l2(weight=0.0001, pattern='hid*.w')"
    )
    assert repr(regularizers.build("recurrent_norm", weight=0.1, squared=True)) == (
        "recurrent_norm(weight=0.1, pattern=None, squared=True)"
    )


# -- errors from build -----------------------------------------------------


def test_unknown_name_lists_choices_and_closest():
    with pytest.raises(
        ValueError,
        match=r"^regularizer: unknown regularizer 'weight_l22'; choose from contractive, "
        r".*weight_sparsity \(closest: weight_l2[,)]",
    ):
        regularizers.build("weight_l22", weight=0.1)
    with pytest.raises(ValueError, match=r"unknown regularizer 'zzzz'; choose from [^(]*$"):
        regularizers.lookup("zzzz")


def test_unknown_argument_lists_arguments_and_closest():
    with pytest.raises(
        TypeError,
        match=r"^weight_l2: unknown argument 'wieght'; weight_l2 takes weight, pattern "
        r"\(closest: weight\)$",
    ):
        regularizers.build("weight_l2", wieght=1e-4)
    with pytest.raises(
        TypeError,
        match=r"^weight_decay: unknown argument 'patern'; weight_l2 takes weight, pattern "
        r"\(closest: pattern\)$",
    ):
        regularizers.build("weight_decay", weight=1e-4, patern="*.w")
    with pytest.raises(
        TypeError,
        match=r"^recurrent_norm: unknown argument 'squard'; recurrent_norm takes weight, "
        r"pattern, squared \(closest: squared\)$",
    ):
        regularizers.build("recurrent_norm", weight=0.1, squard=True)


def test_missing_weight_is_an_error():
    with pytest.raises(TypeError, match=r"^hidden_l1: weight is required$"):
        regularizers.build("hidden_l1", pattern="hid1:out")


@pytest.mark.parametrize(
    ("name", "weight", "allowed"),
    [
        ("weight_l2", -1.0, r"\[0, inf\)"),
        ("weight_decay", float("nan"), r"\[0, inf\)"),
        ("hidden_l1", float("inf"), r"\[0, inf\)"),
        ("max_norm", 0, r"\(0, inf\)"),
        ("max_gradient_norm", -2, r"\(0, inf\)"),
        ("max_total_gradient_norm", 0.0, r"\(0, inf\)"),
        ("max_gradient_elem", 0, r"\(0, inf\)"),
        ("hidden_dropout", 1.0, r"\[0, 1\)"),
        ("input_dropout", -0.1, r"\[0, 1\)"),
        ("hidden_noise", -0.5, r"\[0, inf\)"),
    ],
)
def test_weight_out_of_range(name, weight, allowed):
    with pytest.raises(
        ValueError, match=rf"^{name}: weight must be a number in {allowed}, got {weight!r}$"
    ):
        regularizers.build(name, weight=weight)


@pytest.mark.parametrize("weight", ["0.1", True, [0.1], None, np.ones(2)])
def test_weight_of_the_wrong_type(weight):
    with pytest.raises(
        TypeError, match=r"^weight_l1: weight must be a number or a symbolic scalar, got "
    ):
        regularizers.build("weight_l1", weight=weight)


def test_weight_must_be_a_scalar_variable():
    import pytensor.tensor as pt

    with pytest.raises(
        TypeError, match=r"^weight_l1: weight must be a scalar, got a 1-d variable$"
    ):
        regularizers.build("weight_l1", weight=pt.vector("w"))


def test_numpy_and_symbolic_scalars_are_weights():
    from helpers import shared

    assert regularizers.build("weight_l2", weight=np.float32(0.5)).weight == 0.5
    w = shared(0.5, "lam")
    assert regularizers.build("weight_l2", weight=w).weight is w


# -- from_kwargs -------------------------------------------------------------


def test_from_kwargs_scalar_is_the_weight():
    (reg,) = regularizers.from_kwargs(weight_l2=1e-4)
    assert type(reg) is regularizers.WeightL2
    assert reg.config() == {"weight": 1e-4, "pattern": None}
    (reg,) = regularizers.from_kwargs(max_gradient_norm=np.float64(5))
    assert reg.config() == {"weight": 5.0, "pattern": None}


def test_from_kwargs_dict_is_the_arguments():
    (reg,) = regularizers.from_kwargs(recurrent_norm=dict(weight=0.1, squared=True))
    assert reg.config() == {"weight": 0.1, "pattern": None, "squared": True}
    (reg,) = regularizers.from_kwargs(dropout=dict(weight=0.5, pattern="hid1:out", seed=3))
    assert reg.config() == {"weight": 0.5, "pattern": "hid1:out", "seed": 3}


def test_from_kwargs_none_and_zero_turn_off():
    assert regularizers.from_kwargs(weight_l2=None, hidden_l1=0, dropout=0.0, noise=None) == []


def test_from_kwargs_ignores_keys_that_are_not_regularizers():
    regs = regularizers.from_kwargs(learning_rate=0.1, algo="adam", weight_l22=3, hidden_l2=0.5)
    assert [r.name for r in regs] == ["hidden_l2"]


def test_from_kwargs_keeps_keyword_order_and_alias_labels():
    regs = regularizers.from_kwargs(hidden_sparsity=0.1, weight_decay=0.2, max_norm=3)
    assert [r.name for r in regs] == ["hidden_l1", "weight_l2", "max_norm"]
    assert [r.label for r in regs] == ["hidden_sparsity", "weight_decay", "max_norm"]


def test_from_kwargs_mapping_form():
    regs = regularizers.from_kwargs(noise={"hid[12]:out": 0.1, "in:out": 0.01})
    assert [(type(r), r.weight, r.pattern.spec) for r in regs] == [
        (regularizers.Noise, 0.1, "hid[12]:out"),
        (regularizers.Noise, 0.01, "in:out"),
    ]
    regs = regularizers.from_kwargs(dropout={"hid1:out": 0.5, "in:out": 0.2})
    assert [(type(r), r.weight, r.pattern.spec) for r in regs] == [
        (regularizers.Dropout, 0.5, "hid1:out"),
        (regularizers.Dropout, 0.2, "in:out"),
    ]


def test_from_kwargs_mapping_form_only_for_noise_and_dropout():
    with pytest.raises(
        TypeError, match=r"^hidden_l1: unknown argument 'hid1:out'; hidden_l1 takes"
    ):
        regularizers.from_kwargs(hidden_l1={"hid1:out": 0.1})


def test_from_kwargs_alias_and_canonical_together_is_an_error():
    with pytest.raises(
        TypeError,
        match=r"^weight_decay: weight_l2 and weight_decay name the same regularizer "
        r"\(weight_l2\); give one$",
    ):
        regularizers.from_kwargs(weight_l2=1e-4, weight_decay=1e-3)
    with pytest.raises(TypeError, match=r"hidden_l1 and hidden_sparsity name the same"):
        regularizers.from_kwargs(hidden_l1=0, hidden_sparsity=0.1)


@pytest.mark.parametrize("value", ["0.1", [0.1], (0.1,), True, object()])
def test_from_kwargs_bad_value_type(value):
    with pytest.raises(
        TypeError,
        match=r"^weight_l2: expected a number, a dict of weight_l2's arguments "
        r"\(weight, pattern\), got ",
    ):
        regularizers.from_kwargs(weight_l2=value)


def test_from_kwargs_bad_value_type_mentions_the_mapping_form():
    with pytest.raises(
        TypeError,
        match=r"^noise: expected a number, a dict of noise's arguments \(weight, pattern, seed\) "
        r"or a \{pattern: weight\} dict, got \[0.1\]$",
    ):
        regularizers.from_kwargs(noise=[0.1])


def test_from_kwargs_generic_noise_without_pattern_is_an_error():
    with pytest.raises(TypeError, match=r"^noise: give a pattern, e.g. noise=\{'hid1:out': 0.1\}"):
        regularizers.from_kwargs(noise=0.1)
    with pytest.raises(TypeError, match=r"or use input_dropout, hidden_dropout or output_dropout$"):
        regularizers.from_kwargs(dropout=0.5)


def test_from_kwargs_passes_regularizer_instances_through():
    reg = regularizers.build("weight_l2", weight=0.3)
    assert regularizers.from_kwargs(weight_decay=reg) == [reg]
    with pytest.raises(
        TypeError, match=r"^weight_l1: got a weight_l2 regularizer; expected a weight_l1$"
    ):
        regularizers.from_kwargs(weight_l1=reg)


# -- register ------------------------------------------------------------------


@pytest.fixture
def scratch_registry(monkeypatch):
    """Let a test register names without leaking them into the real registry."""
    monkeypatch.setattr(registry, "_REGULARIZERS", registry._REGULARIZERS.copy())
    monkeypatch.setattr(registry, "_MAPPING_FORM", set(registry._MAPPING_FORM))


def test_register_rejects_duplicates(scratch_registry):
    before = regularizers.names()

    class Twice(Regularizer):
        def __init__(self, weight, pattern=None):
            super().__init__(weight, pattern)

    with pytest.raises(ValueError, match=r"^register: the name 'weight_l2' is already registered$"):
        regularizers.register("weight_l2")(Twice)
    with pytest.raises(
        ValueError, match=r"^register: the name 'weight_decay' is already registered$"
    ):
        regularizers.register("brand_new", "weight_decay")(Twice)
    assert regularizers.names() == before
    assert Twice.name is None


def test_register_rejects_non_regularizers(scratch_registry):
    with pytest.raises(TypeError, match=r"^register\('thing'\): .* is not a Regularizer subclass$"):
        regularizers.register("thing")(dict)


def test_register_adds_a_name_that_builds(scratch_registry):
    @regularizers.register("scratch_penalty", "scratch_alias")
    class Scratch(Regularizer):
        def __init__(self, weight, pattern=None):
            super().__init__(weight, pattern)

    assert {"scratch_penalty", "scratch_alias"} <= set(regularizers.names())
    (reg,) = regularizers.from_kwargs(scratch_alias=0.5)
    assert type(reg) is Scratch and reg.name == "scratch_penalty"
    assert regularizers.build("scratch_penalty", **reg.config()).config() == reg.config()


def test_scratch_registry_did_not_leak():
    assert "scratch_penalty" not in regularizers.names()
