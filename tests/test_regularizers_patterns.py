"""Glob patterns over output and parameter names (``regularizers.Pattern``).

The reference is ``fnmatch.fnmatchcase`` applied by hand; messages follow the
project's one shape (what was wrong, the value, what is allowed, the closest).
"""

import fnmatch

import pytest
from helpers import feedforward

import regularizers
from regularizers import Pattern

OUTPUTS = ["in:out", "hid1:pre", "hid1:out", "hid2:pre", "hid2:out", "out:out"]
PARAMS = ["hid1.w", "hid1.b", "hid2.w", "hid2.b", "out.w", "out.b"]


@pytest.mark.parametrize(
    "globs",
    ["hid?:out", "*:pre", "hid[12].w", ["*.b", "out.*"], ("in:*", "out:*"), "hid1.w", "*"],
)
def test_select_agrees_with_fnmatch(globs):
    names = OUTPUTS + PARAMS
    patterns = [globs] if isinstance(globs, str) else list(globs)
    expected = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in patterns)]
    p = Pattern(globs, owner="test")
    assert p.select(names, "name") == expected
    assert [n for n in names if p(n)] == expected


def test_select_keeps_given_order_and_drops_repeats():
    p = Pattern(["out:*", "hid*:out", "*:out"])
    names = ["out:out", "hid2:out", "hid1:out", "hid2:out", "in:out"]
    assert p.select(names, "output") == ["out:out", "hid2:out", "hid1:out", "in:out"]


def test_matching_is_case_sensitive():
    p = Pattern("HID1:out")
    assert not p("hid1:out")
    with pytest.raises(ValueError, match=r"^pattern: pattern 'HID1:out' matches no output"):
        p.select(OUTPUTS, "output")


def test_spec_equality_and_hash():
    assert Pattern("hid1:out").spec == "hid1:out"
    assert Pattern(("a*", "b*")).spec == ["a*", "b*"]
    assert Pattern(["a*", "b*"]) == Pattern(("a*", "b*"))
    assert hash(Pattern(["a*", "b*"])) == hash(Pattern(("a*", "b*")))
    assert Pattern("a*") != Pattern("b*")
    assert Pattern("a*") != "a*"
    assert repr(Pattern(["a*", "b*"])) == "Pattern(['a*', 'b*'])"


def test_no_match_lists_available_names_and_closest():
    p = Pattern("hid3:out", owner="recurrent_norm")
    expected = (
        "recurrent_norm: pattern 'hid3:out' matches no output; outputs are "
        "in:out, hid1:pre, hid1:out, hid2:pre, hid2:out, out:out (closest: "
    )
    with pytest.raises(ValueError) as info:
        p.select(OUTPUTS, "output")
    message = str(info.value)
    assert message.startswith(expected)
    assert "hid1:out" in message[len(expected) :] and "hid2:out" in message[len(expected) :]


def test_no_match_without_anything_close_has_no_hint():
    with pytest.raises(
        ValueError, match=r"^x: pattern 'zzz' matches no parameter; parameters are "
    ):
        Pattern("zzz", owner="x").select(PARAMS, "parameter")
    with pytest.raises(ValueError) as info:
        Pattern("zzz", owner="x").select(PARAMS, "parameter")
    assert "closest" not in str(info.value)


def test_no_match_in_empty_name_list_says_none():
    with pytest.raises(ValueError, match=r"^x: pattern 'a' matches no output; outputs are none$"):
        Pattern("a", owner="x").select([], "output")


def test_every_glob_of_an_explicit_list_must_match():
    p = Pattern(["hid1:out", "hid9:out"], owner="hidden_l1")
    with pytest.raises(
        ValueError,
        match=r"^hidden_l1: pattern 'hid9:out' \(in \['hid1:out', 'hid9:out'\]\) "
        r"matches no output; outputs are in:out, .*\(closest: ",
    ):
        p.select(OUTPUTS, "output")
    # the same list through a regularizer: the typo is an error, not a smaller penalty
    graph, _ = feedforward()
    with pytest.raises(ValueError, match=r"hidden_l1: pattern 'hid9:out' \(in \["):
        regularizers.build("hidden_l1", weight=0.1, pattern=["hid1:out", "hid9:out"]).loss(graph)


@pytest.mark.parametrize("bad", [3, None, [], (), ["hid1:out", 2], b"hid1:out", {"a": 1}])
def test_bad_pattern_types_are_rejected(bad):
    with pytest.raises(
        TypeError, match=r"^owner: pattern must be a glob string or a non-empty list of them, got "
    ):
        Pattern(bad, owner="owner")


def test_bad_pattern_type_through_a_regularizer_names_it():
    with pytest.raises(TypeError, match=r"^weight_decay: pattern must be a glob string .*, got 3$"):
        regularizers.build("weight_decay", weight=0.1, pattern=3)
    with pytest.raises(TypeError, match=r"^contractive wrt: pattern must be a glob string"):
        regularizers.build("contractive", weight=0.1, wrt=[])


def test_regularizer_pattern_no_match_message():
    graph, _ = feedforward()
    with pytest.raises(
        ValueError,
        match=r"^weight_l2: pattern 'hid3.w' matches no parameter; parameters are "
        r"hid1.w, hid1.b, hid2.w, hid2.b, out.w, out.b \(closest: (hid1.w, hid2.w|hid2.w, hid1.w)",
    ):
        regularizers.build("weight_l2", weight=0.1, pattern="hid3.w").loss(graph)
