"""The notebooks as a user meets them in JupyterLab, beyond what nbval checks (that cells run).

A user opens them on the kernel ``make lab`` registers, sees progress bars as widgets (no
``TqdmWarning: IProgress not found`` box, no empty stderr strip a finished bar leaves), and after
running them finds git clean: the committed files are stripped, and nbstripout with the settings
``make lab`` installs turns an executed notebook back into the committed file.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAKEFILE = (ROOT / "Makefile").read_text()


def _kernel_make_lab_registers() -> str:
    found = re.search(r"ipykernel install [^\n]*--name (\S+)", MAKEFILE)
    assert found, "the Makefile registers no kernel"
    return found.group(1)


def _extra_keys_make_lab_sets() -> str:
    found = re.search(r'filter\.nbstripout\.extrakeys "([^"]*)"', MAKEFILE)
    assert found, "make lab sets no nbstripout extra keys"
    return found.group(1)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_stripped_and_open_on_the_project_kernel(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == _kernel_make_lab_registers()
    assert "language_info" not in nb["metadata"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} was committed with outputs"


def test_git_strips_notebooks_with_the_filter_make_lab_installs():
    attributes = (ROOT / ".gitattributes").read_text()
    assert re.search(r"^\*\.ipynb\s+filter=nbstripout", attributes, re.M)
    assert "nbstripout --install --attributes .gitattributes" in MAKEFILE


def test_progress_bars_are_widgets_in_the_lab():
    """tqdm.auto draws a widget (and warns IProgress not found without ipywidgets) in a kernel."""
    import ipywidgets  # noqa: F401 - the lab extra that makes notebook progress bars widgets

    pyproject = (ROOT / "pyproject.toml").read_text()
    lab = re.search(r"^lab = \[(.*)\]$", pyproject, re.M)
    assert lab and "ipywidgets" in lab.group(1) and "nbstripout" in lab.group(1)


def _execute(nb, where: Path):
    nbclient = pytest.importorskip("nbclient")
    nbclient.NotebookClient(nb, timeout=600, kernel_name=_kernel_make_lab_registers(),
                            resources={"metadata": {"path": str(where)}}).execute()
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _no_warning_and_no_empty_strip(outputs) -> None:
    streams = [o for o in outputs if o.output_type == "stream"]
    assert not [o.text for o in streams if o.name == "stderr" and "Warning" in o.text], "a warning box"
    assert not [o for o in streams if not o.text.strip()], "an empty output strip"


def test_a_progress_bar_in_the_lab_is_a_widget_with_no_warning(tmp_path):
    """What %leaktrace shows while it bisects: tqdm's widget (a TqdmWarning box without ipywidgets)."""
    nbformat = pytest.importorskip("nbformat")
    (tmp_path / "lab_handlers.py").write_text("KEPT = []\n\ndef handle():\n    KEPT.append(bytearray(4096))\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "%load_ext leakkit\nimport lab_handlers",
        "report = %leaktrace --targets lab_handlers -o lab_handlers.handle()\nassert report.verdict == 'leak', report",
    )]
    outputs = _execute(nb, tmp_path)
    _no_warning_and_no_empty_strip(outputs)
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, f"no progress bar was drawn as a widget: {[o.output_type for o in outputs]}"


def test_an_executed_notebook_strips_back_to_the_committed_file(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    path = ROOT / "notebooks" / "01-quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    _no_warning_and_no_empty_strip(_execute(nb, path.parent))
    ran = tmp_path / path.name
    nbformat.write(nb, ran)
    stripped = subprocess.run([sys.executable, "-m", "nbstripout", "-t", "--extra-keys", _extra_keys_make_lab_sets(),
                               str(ran)], capture_output=True, text=True, check=True).stdout
    assert json.loads(stripped) == json.loads(path.read_text())
