"""A request pipeline built on pluggy that registers a per-request audit plugin (an object with
a ``hookimpl``) and forgets to unregister it when the request ends.

Real leak (pluggy). ``PluginManager.register`` keeps the plugin in ``pm._name2plugin`` and adds
a ``HookImpl`` (with the plugin and its bound method) to each hook caller's
``_hookimpls`` list; every later hook call also runs every old plugin. The fix unregisters in a
``finally`` (or registers one plugin at start).
"""
import itertools
import sys

import pluggy

hookspec = pluggy.HookspecMarker("shop")
hookimpl = pluggy.HookimplMarker("shop")
_seq = itertools.count()


class Spec:
    @hookspec
    def audit(self, request_id: int, event: str) -> None:
        """Called for every audited event."""


class RequestAudit:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.events: list[str] = []

    @hookimpl
    def audit(self, request_id: int, event: str) -> None:
        if request_id == self.request_id:
            self.events.append(event)


PM = pluggy.PluginManager("shop")
PM.add_hookspecs(Spec)


def handle_request(request_id: int) -> int:
    audit = RequestAudit(request_id)
    PM.register(audit, name=f"audit-{request_id}")
    PM.hook.audit(request_id=request_id, event="start")
    PM.hook.audit(request_id=request_id, event="done")
    return len(audit.events)


def workload():
    handle_request(next(_seq))


def release():
    for name, plugin in list(PM.list_name_plugin()):
        if name.startswith("audit-"):
            PM.unregister(plugin)


TARGETS = [sys.modules[__name__], pluggy, pluggy.PluginManager]
EXPECT = {"verdict": ["leak"], "culprit": ["handle_request", "PluginManager.register", "HookImpl.__init__"],
          "root": ["rw25_pluggy_per_request_plugin.PM._name2plugin", "rw25_pluggy_per_request_plugin.PM.hook.audit"]}
TRUTH = {"kind": "leak", "calls": 150, "min_bytes_per_call": 300, "root": "rw25_pluggy_per_request_plugin.PM._name2plugin",
         "root_grows_by": 0.95, "release": "release"}
