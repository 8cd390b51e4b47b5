"""A routing service that holds its road network in memory as a ``networkx.Graph`` (a 300 x 300
grid: 90 000 junctions, 180 000 roads with a length each, ~100 MB of dicts), answers each request
with a shortest path between two nearby junctions, and records the answer in the graph's own
attribute dict, ``ROADS.graph["recent_routes"]``, for a "recent routes" page that trims it in a job
that was never scheduled.

Real leak (networkx) beside a huge standing heap. The route list grows by one small entry per call
(the path: 20 junction tuples, ~570 B); the graph itself never changes. The growing container
hangs off the big object: a search led by what grew finds it, a walk of everything the module
reaches does not finish in time.
"""
import itertools
import sys

import networkx as nx
import networkx.algorithms.shortest_paths.generic as nx_paths

SIDE = 300
ROADS = nx.grid_2d_graph(SIDE, SIDE)
for _u, _v, _d in ROADS.edges(data=True):
    _d["length"] = 1.0
ROADS.graph["recent_routes"] = []
_seq = itertools.count()


def plan_route(src: tuple, dst: tuple) -> list:
    path = nx.shortest_path(ROADS, src, dst)
    ROADS.graph["recent_routes"].append({"from": src, "to": dst, "path": path})
    return path


def workload():
    n = next(_seq)
    x, y = (n * 37) % (SIDE - 12), (n * 91) % (SIDE - 12)
    plan_route((x, y), (x + 10, y + 9))


def release():
    ROADS.graph["recent_routes"].clear()


TARGETS = [sys.modules[__name__], nx_paths]
EXPECT = {"verdict": ["leak"], "culprit": ["plan_route", "shortest_path", "bidirectional_shortest_path",
                                          "_bidirectional_pred_succ"],
          "root": ["rw50_networkx_route_log.ROADS.graph['recent_routes']"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 500, "root": "rw50_networkx_route_log.ROADS.graph['recent_routes']",
         "root_grows_by": 0.95, "release": "release"}
