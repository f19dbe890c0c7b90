"""What the benchmark scripts share besides timing: which gemmacpp they import, and the
--all-targets comparison of SIMD targets.

Which gemmacpp: the installed package by default, the one `make setup` builds into .venv and
`make bench` times (this checkout's python/ holds no compiled _core after `make setup`). To time
an in-tree build instead (`cmake --build build/dev` copies _core beside the sources), set
GEMMACPP_BENCH_IN_TREE=1, which puts this checkout's python/ first on sys.path (child processes
inherit it), or put that directory on PYTHONPATH yourself. Call select_gemmacpp() before the
first `import gemmacpp`; gemmacpp_origin() says which one was imported.

--all-targets (bench_quant.py, bench_linear.py, bench_attention.py): every kernel is timed on each
SIMD target that the build compiled and this CPU supports (gc._core.simd_targets_supported()),
figures side by side, a column per target. The dispatched target (the best the CPU supports, the
first column) losing to a lesser one by more than 10% on any kernel is a defect, and the table
says so below it.
"""
import glob
import os
import sys
from contextlib import contextmanager

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
IN_TREE_VAR = "GEMMACPP_BENCH_IN_TREE"
DEFECT_MARGIN = 0.10  # the dispatched target this much slower than a lesser one: a defect


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


# ---- --all-targets ------------------------------------------------------------------------------

def add_all_targets_argument(parser):
    parser.add_argument("--all-targets", action="store_true",
                        help="time gemmacpp's kernels on every SIMD target this CPU supports, a "
                             "column per target (the dispatched one first)")


def targets():
    """The SIMD targets this CPU supports, the dispatched (best) one first."""
    import gemmacpp as gc
    return list(gc._core.simd_targets_supported())


@contextmanager
def on_target(name):
    """Every gemmacpp kernel dispatches to `name` inside the block."""
    import gemmacpp as gc
    gc._core.set_simd_target(name)
    try:
        yield
    finally:
        gc._core.set_simd_target(None)


def per_target_seconds(fn, time_fn, rounds=2):
    """{target: seconds per call of fn}, best of `rounds` passes over the targets in turn (so that
    load from other processes hits them alike); time_fn(fn) times one pass on one target."""
    best = {}
    for _ in range(rounds):
        for t in targets():
            with on_target(t):
                best[t] = min(best.get(t, float("inf")), time_fn(fn))
    return best


class TargetTable:
    """Prints rows of one figure per target (higher is better) under a header, and collects the
    rows where the dispatched target is more than DEFECT_MARGIN behind a lesser one."""

    def __init__(self, label_header, label_width, unit):
        self.names = targets()
        self.width = label_width
        self.unit = unit
        self.defects = []
        hdr = f"{label_header:<{label_width}}" + "".join(f"{t:>9}" for t in self.names)
        print(f"{unit}, a column per SIMD target (dispatched: {self.names[0]})")
        print(hdr + "  dispatched vs best")
        print("-" * (len(hdr) + 20))

    def row(self, label, figures):
        best = max(self.names, key=lambda t: figures[t])
        first = figures[self.names[0]]
        note = ""
        if best != self.names[0] and first < (1 - DEFECT_MARGIN) * figures[best]:
            note = f"  DEFECT: {best} {figures[best] / first:.2f}x"
            self.defects.append(f"{label.strip()}: {self.names[0]} {first:.1f}, {best} "
                                f"{figures[best]:.1f} {self.unit}")
        elif best != self.names[0]:
            note = f"  {best} {figures[best] / first:.2f}x"
        print(f"{label:<{self.width}}" + "".join(f"{figures[t]:9.1f}" for t in self.names) + note,
              flush=True)

    def summary(self):
        if not self.defects:
            print(f"no kernel is more than {DEFECT_MARGIN:.0%} slower on {self.names[0]} than on "
                  f"a lesser target")
            return
        print(f"DEFECTS: {self.names[0]} more than {DEFECT_MARGIN:.0%} slower than a lesser "
              f"target on {len(self.defects)} kernel(s):")
        for d in self.defects:
            print(f"  {d}")
