"""A mail service that renders one of 1 000 per-campaign templates (a ``DictLoader``) per message,
through ``env.get_template(name)``.

Look-alike (jinja2). The environment keeps compiled templates in an ``LRUCache`` of
``cache_size`` (400 by default): every new template name compiles a template (module code,
functions, globals) and keeps it until 400, then evicts the least recent. Bounded, never a leak.
"""
import itertools
import sys

import jinja2

TEMPLATES = {f"campaign-{i:04d}.txt": ("Hello {{ name }},\n{% for item in items %}- {{ item|title }}\n{% endfor %}"
                                        f"Campaign {i}: {{{{ offer }}}} until {{{{ until }}}}.\n")
             for i in range(1000)}
ENV = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=False)
_seq = itertools.count()


def render_mail(n: int) -> str:
    template = ENV.get_template(f"campaign-{n % 1000:04d}.txt")
    return template.render(name=f"customer {n}", items=["socks", "hats"], offer="-20%", until="Sunday")


def workload():
    render_mail(next(_seq))


TARGETS = [sys.modules[__name__], jinja2, jinja2.Environment, jinja2.utils]
EXPECT = {"verdict": ["plateau", "inconclusive"], "culprit": [None], "root": []}
TRUTH = {"kind": "bounded", "calls": 800, "checkpoints": 16}
