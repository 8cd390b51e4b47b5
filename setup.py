"""Only what pyproject.toml cannot say: ship ``leakkit-agent.pth`` at the top of site-packages.

Every Python of the environment runs that one line at start-up: it reads ``LEAKKIT_AGENT`` and,
only when it is set (and not ``0``), starts leakkit's attach agent (leakkit/frontends/agent/).
Editable installs do not carry it: ``python -m leakkit.frontends.agent.pth`` writes it (``make
install`` does).
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "leakkit-agent.pth"


class BuildPyWithPth(build_py):
    """build_py, plus the .pth file in the wheel's root (site-packages once installed)."""

    def run(self):
        super().run()
        self.mkpath(self.build_lib)
        self.copy_file(PTH, os.path.join(self.build_lib, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})
