"""A white-label mailer that renders each tenant's own Mako template (120 tenants, files in a
template directory) through one ``TemplateLookup(collection_size=40)``, one tenant per request
in turn.

Look-alike (mako), a bound that is enforced but not where its name says. The lookup keeps
compiled templates (module code, render functions, source: ~20 KB each) in ``mako.util.LRUCache``
with ``capacity = 40``; its ``_manage_size`` trims only once the cache holds more than
``capacity * (1 + threshold)`` = 60 entries, back to the 40 most recent. So the holder passes its
declared capacity by half and then saw-tooths between 40 and 60: bounded, never a leak. A bound
read from an attribute name (40) says it is growing past its bound; the code that enforces it
says 60.
"""
import itertools
import os
import sys
import tempfile

import mako.lookup
import mako.template
import mako.util

TEMPLATE_DIR = tempfile.mkdtemp(prefix="rw44-")
for _i in range(120):
    with open(os.path.join(TEMPLATE_DIR, f"tenant-{_i:03d}.mako"), "w") as _f:
        _f.write(f"<%page args='order, customer'/>\n"
                 f"<h1>Brand {_i:03d}: thank you, ${{customer}}</h1>\n"
                 "% for line in order['lines']:\n"
                 "<li>${line['sku']} x ${line['qty']} = ${'%.2f' % (line['qty'] * line['price'])}</li>\n"
                 "% endfor\n"
                 f"<p>Total: ${{'%.2f' % sum(l['qty'] * l['price'] for l in order['lines'])}} (tenant {_i:03d})</p>\n")
LOOKUP = mako.lookup.TemplateLookup(directories=[TEMPLATE_DIR], collection_size=40)
_seq = itertools.count()


def confirmation_mail(tenant: int, order: dict, customer: str) -> str:
    return LOOKUP.get_template(f"tenant-{tenant:03d}.mako").render(order=order, customer=customer)


def workload():
    n = next(_seq)
    confirmation_mail(n % 120, {"lines": [{"sku": "A1", "qty": 2, "price": 9.5}, {"sku": "B7", "qty": 1, "price": 3.0}]},
                      f"customer {n}")


def check_overshoot() -> list[str]:
    """The cache passes its declared capacity and is trimmed back by the code that enforces it."""
    sizes = []
    for _ in range(130):
        workload()
        sizes.append(len(LOOKUP._collection))
    problems = []
    if max(sizes) <= LOOKUP._collection.capacity:
        problems.append(f"the collection never passed its capacity {LOOKUP._collection.capacity}: max {max(sizes)}")
    if max(sizes) > 61 or min(sizes[60:]) > 41:
        problems.append(f"expected a saw-tooth between 40 and 60 entries, got {min(sizes[60:])}..{max(sizes)}")
    return problems


TARGETS = [sys.modules[__name__], mako.lookup, mako.template, mako.util]
EXPECT = {"verdict": ["plateau", "inconclusive", "clean"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 600, "checkpoints": 200,  # every 3rd call: the saw-tooth's peaks in both halves
         "check": "check_overshoot"}
