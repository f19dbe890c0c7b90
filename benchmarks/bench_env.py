"""What the benchmark scripts share besides timing: which gemmacpp they import.

Which gemmacpp: the installed package by default, the one `make setup` builds into .venv and
`make bench` times (this checkout's python/ holds no compiled _core after `make setup`). To time
an in-tree build instead (`cmake --build build/dev` copies _core beside the sources), set
GEMMACPP_BENCH_IN_TREE=1, which puts this checkout's python/ first on sys.path (child processes
inherit it), or put that directory on PYTHONPATH yourself. Call select_gemmacpp() before the
first `import gemmacpp`; gemmacpp_origin() says which one was imported.
"""
import glob
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
IN_TREE_VAR = "GEMMACPP_BENCH_IN_TREE"


def select_gemmacpp():
    """Puts this checkout's python/ first on sys.path when GEMMACPP_BENCH_IN_TREE is set (and not
    0); otherwise leaves the path alone, so that `import gemmacpp` finds the installed package
    (or whatever PYTHONPATH names)."""
    if os.environ.get(IN_TREE_VAR, "0") in ("", "0"):
        return
    tree = os.path.join(ROOT, "python")
    if not glob.glob(os.path.join(tree, "gemmacpp", "_core*")):
        sys.exit(f"{IN_TREE_VAR} is set but {tree}/gemmacpp has no compiled _core: build it "
                 f"(cmake --build build/dev) or unset {IN_TREE_VAR} to time the installed package")
    sys.path.insert(0, tree)


def gemmacpp_origin():
    """'gemmacpp <version> from <directory>' for the imported package."""
    import gemmacpp as gc
    return f"gemmacpp {gc.__version__} from {os.path.dirname(os.path.abspath(gc.__file__))}"
