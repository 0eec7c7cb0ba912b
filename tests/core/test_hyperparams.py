"""Hyperparameter declarations, validation and content versions."""

import math

import pytest

from adaptrec.hyperparams import (
    HyperparamError,
    HyperparamSet,
    HyperparamSpace,
    HyperparamSpec,
)


def spec(**overrides):
    values = {"name": "alpha", "min": 0.0, "max": 1.0, "step": 0.1, "initial": 0.5}
    values.update(overrides)
    return values


def test_packaged_space_loads():
    space = HyperparamSpace.from_yaml()
    assert space.names == ["alpha", "w_content", "w_kg", "w_topic", "beta", "gamma"]
    assert space["beta"].grid() == [0.001, 0.003, 0.005, 0.007, 0.009]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"min": 1.0, "max": 0.0}, "min (1.0) must be less than max (0.0)"),
        ({"min": 1.0, "max": 1.0}, "must be less than max"),
        ({"step": 0.0}, "step must be positive"),
        ({"step": -0.1}, "step must be positive"),
        ({"initial": 2.0}, "initial (2.0) must lie within [0.0, 1.0]"),
        ({"min": "zero"}, "min must be a number"),
        ({"max": math.nan}, "max must be finite"),
        ({"step": True}, "step must be a number"),
    ],
)
def test_invalid_spec_rejected(overrides, fragment):
    with pytest.raises(HyperparamError) as raised:
        HyperparamSpace.from_dicts([spec(**overrides)])
    assert fragment in str(raised.value)
    assert "'alpha'" in str(raised.value)


def test_duplicate_names_rejected():
    with pytest.raises(HyperparamError, match=r"duplicated: \['alpha'\]"):
        HyperparamSpace.from_dicts([spec(), spec()])


def test_missing_and_unknown_keys_rejected():
    entry = spec()
    del entry["step"]
    with pytest.raises(HyperparamError, match=r"entry 0 is missing \['step'\]"):
        HyperparamSpace.from_dicts([entry])
    with pytest.raises(HyperparamError, match=r"unknown keys \['scale'\]"):
        HyperparamSpace.from_dicts([spec(scale="log")])


def test_empty_space_rejected():
    with pytest.raises(HyperparamError, match="at least one"):
        HyperparamSpace([])


def test_yaml_errors_name_the_file(tmp_path):
    missing = tmp_path / "absent.yaml"
    with pytest.raises(HyperparamError, match="absent.yaml not found"):
        HyperparamSpace.from_yaml(missing)

    broken = tmp_path / "broken.yaml"
    broken.write_text("hyperparameters: [\n")
    with pytest.raises(HyperparamError, match="broken.yaml is not valid YAML"):
        HyperparamSpace.from_yaml(broken)

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("- name: alpha\n")
    with pytest.raises(HyperparamError, match="top-level 'hyperparameters'"):
        HyperparamSpace.from_yaml(wrong)


def test_grid_and_snap_stay_on_steps():
    declared = HyperparamSpec("gamma", 50.0, 950.0, 100.0, 250.0)
    assert declared.grid() == [50.0 + 100.0 * i for i in range(10)]
    assert declared.snap(260.0) == 250.0
    assert declared.snap(10_000.0) == 950.0
    assert declared.snap(-5.0) == 50.0
    # A step that does not divide the range stops at the last whole step.
    uneven = HyperparamSpec("x", 0.0, 1.0, 0.3, 0.0)
    assert uneven.grid() == [0.0, 0.3, 0.6, 0.9]


def test_validate_checks_names_and_bounds():
    space = HyperparamSpace.from_dicts([spec(), spec(name="beta", max=2.0)])
    accepted = space.validate({"alpha": 0.2, "beta": 2})
    assert accepted["beta"] == 2.0

    with pytest.raises(HyperparamError, match=r"missing \['beta'\], unknown \['b'\]"):
        space.validate({"alpha": 0.2, "b": 1.0})
    with pytest.raises(
        HyperparamError, match=r"'alpha' = 1.5 lies outside \[0.0, 1.0\]"
    ):
        space.validate({"alpha": 1.5, "beta": 1.0})
    with pytest.raises(HyperparamError, match="'alpha' must be a number"):
        space.validate({"alpha": "high", "beta": 1.0})
    with pytest.raises(HyperparamError, match="must be a mapping"):
        space.validate([0.1, 0.2])


def test_version_depends_only_on_values():
    first = HyperparamSet({"alpha": 0.3, "beta": 1.0})
    reordered = HyperparamSet({"beta": 1.0, "alpha": 0.1 + 0.2})
    assert first.version == reordered.version
    assert first == reordered
    assert len(first.version) == 12
    assert HyperparamSet({"alpha": 0.4, "beta": 1.0}).version != first.version


def test_json_round_trip_and_tampered_version():
    space = HyperparamSpace.from_yaml()
    initial = space.initial()
    document = initial.to_json_dict()
    assert HyperparamSet.from_json_dict(document, space) == initial

    tampered = {"version": document["version"], "values": dict(document["values"])}
    tampered["values"]["alpha"] = 0.9
    with pytest.raises(HyperparamError, match="does not match its values"):
        HyperparamSet.from_json_dict(tampered, space)
    with pytest.raises(HyperparamError, match='"values"'):
        HyperparamSet.from_json_dict({"version": "x"})
    with pytest.raises(HyperparamError, match="must be finite"):
        HyperparamSet.from_json_dict({"values": {"alpha": math.inf}})
