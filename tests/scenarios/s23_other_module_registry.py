"""Untracked strings leak into a registry that lives in another module (not a target)."""
import sys
import types

EXPECT = {"verdict": ["leak"], "culprit": ["note"], "root": ["NOTES"]}
registry = types.ModuleType("lk_other_registry")
registry.NOTES = {}
sys.modules["lk_other_registry"] = registry
_n = [0]
def note(n):
    registry.NOTES[f"k{n}"] = f"value-{n}" * 5
def workload():
    _n[0] += 1
    note(_n[0])
