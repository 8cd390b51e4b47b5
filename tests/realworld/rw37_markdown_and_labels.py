"""A documentation service that renders each tenant's release notes with one shared
``markdown.Markdown`` instance, and counts renders in a ``prometheus_client`` counter labelled
by the document's path.

Two independent real leaks. Python-Markdown keeps every reference-style link definition it has
parsed in ``MD.references`` until ``MD.reset()``, which the service never calls (its docs say to,
between documents): each note's ``[ref-<n>]: ...`` definitions stay. The counter keeps a child per
distinct path (``RENDERS._metrics``). Both grow on every call, each at its own rate; the report
must name both, each with its own root.

Fixed usage: ``MD.reset()`` after each document and the route template as the label.
"""
import itertools
import sys

import markdown
import prometheus_client

MD = markdown.Markdown(extensions=["footnotes"])
REGISTRY = prometheus_client.CollectorRegistry()
RENDERS = prometheus_client.Counter("docs_renders", "Documents rendered", ["path"], registry=REGISTRY)
_seq = itertools.count()


def render_notes(tenant: int, release: int, *, fixed: bool = False) -> str:
    refs = "\n".join(f"[ref-{tenant}-{release}-{i}]: https://tracker.example/{tenant}/issues/{release * 10 + i} "
                     f"\"Issue {release * 10 + i}\"" for i in range(4))
    text = (f"# Release {release} for tenant {tenant}\n\nFixed [the login bug][ref-{tenant}-{release}-0] and "
            f"[the export][ref-{tenant}-{release}-1].\n\n{refs}\n")
    html = MD.convert(text)
    if fixed:
        MD.reset()
    RENDERS.labels(path="/notes/<tenant>/<release>" if fixed else f"/notes/{tenant}/{release}").inc()
    return html


def workload():
    n = next(_seq)
    render_notes(n % 97, n)


def workload_fixed():
    n = next(_seq)
    render_notes(n % 97, n, fixed=True)


def release():
    MD.reset()
    RENDERS.clear()


TARGETS = [sys.modules[__name__], markdown.core, markdown.blockprocessors, prometheus_client.metrics]
EXPECT = {"verdict": ["leak"], "culprit": ["ReferenceProcessor.run", "render_notes", "MetricWrapperBase.labels"],
          "root": ["MD.references", "RENDERS._metrics"], "says": ["MD.references"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 500, "root": "rw37_markdown_and_labels.MD.references",
         "root_grows_by": 3.5, "release": "release"}
