"""A config service that parses each tenant's YAML with a tenant-specific ``!secret`` tag,
registering a new constructor per request under a per-tenant tag (``!secret-<tenant>``).

Real leak (PyYAML). ``yaml.add_constructor(tag, fn, Loader=yaml.SafeLoader)`` stores the
function in the class-level registry ``SafeLoader.yaml_constructors`` (copied into
``SafeLoader.__dict__`` on first use), so every tenant tag and its closure, with the tenant's
secrets, stays there forever. The fix is one loader subclass per tenant kind, or one tag whose
constructor reads the tenant from the loader.
"""
import itertools
import sys

import yaml

_seq = itertools.count()
DOC = "db:\n  user: app\n  password: !secret-{tenant} db_password\nreplicas: 3\n"


def load_tenant_config(tenant: str, secrets: dict) -> dict:
    tag = f"!secret-{tenant}"

    def secret(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        return secrets[loader.construct_scalar(node)]

    yaml.add_constructor(tag, secret, Loader=yaml.SafeLoader)
    return yaml.load(DOC.format(tenant=tenant), Loader=yaml.SafeLoader)


def workload():
    n = next(_seq)
    tenant = f"t{n:05d}"
    config = load_tenant_config(tenant, {"db_password": f"pw-{tenant}-" + "x" * 40})
    assert config["replicas"] == 3


def release():
    for tag in [t for t in yaml.SafeLoader.yaml_constructors if str(t).startswith("!secret-")]:
        del yaml.SafeLoader.yaml_constructors[tag]


TARGETS = [sys.modules[__name__], yaml, yaml.constructor, yaml.SafeLoader]
EXPECT = {"verdict": ["leak"],
          "culprit": ["load_tenant_config"],
          "root": ["SafeLoader.yaml_constructors"]}
TRUTH = {"kind": "leak", "calls": 200, "min_bytes_per_call": 300, "root": "yaml.SafeLoader.yaml_constructors",
         "root_grows_by": 0.95, "release": "release"}
