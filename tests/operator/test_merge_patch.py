"""The status patch: keys dropped from the new status are deleted."""

from __future__ import annotations

from adaptrec.operator.reconcile import merge_patch


def test_removed_key_becomes_null():
    old = {"canary": {"startedAt": "t0", "stableCTR": 0.1}, "phase": "Canary"}
    new = {"canary": {"startedAt": "t1"}, "phase": "Canary"}
    assert merge_patch(old, new) == {"canary": {"startedAt": "t1", "stableCTR": None}}


def test_unchanged_status_gives_empty_patch():
    status = {"phase": "Stable", "history": [{"version": "a"}], "kopf": {"x": 1}}
    assert merge_patch(status, status) == {}


def test_lists_are_replaced_whole():
    old = {"history": [{"version": "a"}]}
    new = {"history": [{"version": "a"}, {"version": "b"}]}
    assert merge_patch(old, new) == new


def test_new_null_value_is_sent():
    assert merge_patch({}, {"candidate": None}) == {"candidate": None}
    assert merge_patch({"candidate": {"version": "a"}}, {"candidate": None}) == {
        "candidate": None
    }
