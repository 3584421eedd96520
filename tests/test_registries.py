"""One registry shape: every named kind raises the same structured InvalidArgument."""

import pytest

from regularizers import registry as regularizer_registry
from regularizers.errors import InvalidArgument
from regularizers.registries import Registry
from trainkit.layers import activations
from trainkit.models import losses
from trainkit.optimizers import registry as optimizer_registry
from trainkit.training import schedules

LOOKUPS = [
    (regularizer_registry.lookup, "weight_l22", "regularizer", "regularizer", "weight_l2"),
    (optimizer_registry.lookup, "adamm", "algo", "algorithm", "adam"),
    (
        lambda name: schedules.build({"name": name}, 0.1),
        "cosin",
        "lr_schedule",
        "schedule",
        "cosine",
    ),
    (activations.get, "rleu", "activation", "activation", "relu"),
    (losses.get, "mse2", "loss", "loss", "mse"),
]


@pytest.mark.parametrize("lookup, value, argument, kind, near", LOOKUPS)
def test_every_registry_raises_one_structured_error(lookup, value, argument, kind, near):
    with pytest.raises(
        InvalidArgument, match=rf"^{argument}: unknown {kind} '{value}'; choose from .*{near}"
    ) as caught:
        lookup(value)
    error = caught.value
    assert (error.argument, error.value) == (argument, value)
    assert near in error.allowed and error.allowed == sorted(error.allowed)
    assert error.closest[0] == near


@pytest.mark.parametrize("lookup, value, argument, kind, near", LOOKUPS)
def test_an_unhashable_name_is_the_same_error(lookup, value, argument, kind, near):
    with pytest.raises(InvalidArgument, match=rf"^{argument}: unknown {kind}"):
        lookup(["not", "a", "name"])


def test_a_registry_keeps_aliases_and_refuses_a_name_twice():
    shapes = Registry("shape", "shape")
    shapes.add("square", 4, "box")
    assert shapes.lookup("box") == shapes.lookup("square") == 4
    assert "box" in shapes and "circle" not in shapes and ["x"] not in shapes
    assert shapes.canonical("box") == "square"
    with pytest.raises(ValueError, match=r"^register: shape 'box' is already registered$"):
        shapes.add("box", 5)
    copy = shapes.copy()
    copy.add("circle", 0)
    assert "circle" not in shapes and copy.names() == ["circle", "square"]
    error = shapes.error("sqare", argument="--shape", allowed=["square"])
    assert str(error) == "--shape: unknown shape 'sqare'; choose from square (closest: square)"


def test_layer_forms_use_the_same_registry_and_error():
    from trainkit.layers.base import form_class

    assert form_class("dense", "layers[1]") is form_class("feedforward", "layers[1]")
    with pytest.raises(
        InvalidArgument,
        match=r"^layers\[2\]: form: unknown form 'conv1'; choose from .*\(closest: conv1d",
    ) as caught:
        form_class("conv1", "layers[2]")
    error = caught.value
    assert (error.argument, error.value) == ("layers[2]", "conv1")
    assert "conv1d" in error.allowed and error.closest[0] == "conv1d"
