"""The package's module structure, read from its source with ast (nothing is imported):

* no import cycles among the modules of python/gemmacpp, counting function-local imports too: a
  cycle makes the import order matter, and a lazy import that only dodges one hides it (lazy
  imports of optional packages outside gemmacpp, like PIL, torch or lm_eval, are not affected);
* no module imports another module's private name (`from .x import _y`): what a module shares is
  public. The package's private modules (_core, _defaults, ...) may be imported by its modules.

The checker is tested on small made-up packages too, so that it is known to catch both.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "python"
PACKAGE = "gemmacpp"


def package_modules(root: Path, package: str) -> dict:
    """{dotted name: source path, or None for an extension module} of a package's modules."""
    out = {}
    for path in sorted((root / package).rglob("*")):
        rel = path.relative_to(root)
        if path.suffix == ".py":
            parts = rel.with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
        elif path.suffix in (".so", ".pyd"):  # _core.cpython-311-x86_64-linux-gnu.so: _core
            out[".".join(rel.parts[:-1] + (path.name.split(".")[0],))] = None
    return out


def gemmacpp_modules() -> dict:
    """The package's modules, with its compiled extension _core, which lies in the source tree only
    after an in-tree build (an installed wheel has it in site-packages)."""
    modules = package_modules(ROOT, PACKAGE)
    modules.setdefault(f"{PACKAGE}._core", None)
    return modules


def _is_package(name: str, modules: dict) -> bool:
    return modules[name] is not None and modules[name].name == "__init__.py"


def _ancestors(name: str) -> set:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _imports(name: str, path: Path, modules: dict):
    """(target module, imported names or None, line, lazy) of each import of a package module in
    the module `name`; lazy: inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = name if _is_package(name, modules) else name.rpartition(".")[0]
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, None, child.lineno, lazy))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                found.append((target, [a.name for a in child.names], child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    root = name.split(".")[0]
    return [f for f in found if f[0] == root or f[0].startswith(root + ".")]


def import_graph(modules: dict, *, lazy: bool) -> dict:
    """{module: {modules whose code runs because it imports them}}; with lazy, also the imports
    inside functions. Importing a.b.c runs the packages a.b and a unless they enclose the
    importer (already running); `from a import b` runs a.b when b is a module; `import a` or
    names taken from a package that encloses the importer need its __init__ to have run."""
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        if path is None:
            continue
        for target, names, _, is_lazy in _imports(name, path, modules):
            if is_lazy and not lazy:
                continue
            enclosing = _ancestors(name) | {name}
            runs = {p for p in _ancestors(target) | {target} if p not in enclosing}
            submodules = [f"{target}.{n}" for n in names or [] if f"{target}.{n}" in modules]
            runs.update(submodules)
            if target in enclosing and target != name and (names is None or
                                                           len(submodules) < len(names)):
                runs.add(target)  # its own names are read: its __init__ must have finished
            graph[name].update(r for r in runs if r in modules)
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (or a module importing itself),
    each as a sorted list (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def private_imports(modules: dict) -> list:
    """'module:line: from target import _name' for each private name a module imports from
    another module (private modules of the package, like _core, are allowed)."""
    out = []
    for name, path in modules.items():
        if path is None:
            continue
        for target, names, line, _ in _imports(name, path, modules):
            for n in names or []:
                if n.startswith("_") and not n.startswith("__") and f"{target}.{n}" not in modules:
                    out.append(f"{name}:{line}: from {target} import {n}")
    return out


# ---- the package ----

def test_no_import_cycles():
    modules = gemmacpp_modules()
    assert "gemmacpp.model" in modules and "gemmacpp._core" in modules
    found = cycles(import_graph(modules, lazy=False))
    assert not found, "modules that import each other: " + "; ".join(map(" ".join, found))


def test_no_import_cycle_hidden_by_a_lazy_import():
    found = cycles(import_graph(gemmacpp_modules(), lazy=True))
    assert not found, ("modules that import each other, counting imports inside functions: " +
                       "; ".join(map(" ".join, found)))


def test_no_private_names_imported_across_modules():
    found = private_imports(gemmacpp_modules())
    assert not found, "private names imported from another module: " + "; ".join(found)


# ---- the checker, on made-up packages ----

def write_package(root: Path, files: dict) -> dict:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package_modules(root, "pkg")


def test_checker_finds_a_cycle_through_a_subpackage(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "from .sub.b import g\n\ndef f():\n    pass\n",
        "pkg/sub/__init__.py": "from .b import g\n",
        "pkg/sub/b.py": "from ..c import h\n\ndef g():\n    pass\n",
        "pkg/c.py": "from . import a\n\ndef h():\n    pass\n",
    })
    assert cycles(import_graph(modules, lazy=False)) == [["pkg.a", "pkg.c", "pkg.sub", "pkg.sub.b"]]


def test_checker_finds_a_cycle_dodged_by_a_lazy_import(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import g\n",
        "pkg/b.py": "def g():\n    from .a import f  # dodges the cycle\n    import PIL\n",
    })
    assert cycles(import_graph(modules, lazy=False)) == []
    assert cycles(import_graph(modules, lazy=True)) == [["pkg.a", "pkg.b"]]


def test_checker_allows_parent_packages_and_private_modules(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": "from . import _impl\nfrom .sub import x\n",
        "pkg/_impl.py": "X = 1\n",
        "pkg/sub/__init__.py": "from .. import _impl\nfrom .._impl import X as x\n",
    })
    assert cycles(import_graph(modules, lazy=True)) == []
    assert private_imports(modules) == []


def test_checker_finds_private_names_and_names_read_from_an_unfinished_package(tmp_path):
    modules = write_package(tmp_path, {
        "pkg/__init__.py": "from .a import f\nLIMIT = 3\n",
        "pkg/a.py": "from . import LIMIT\nfrom .b import _helper\n\ndef f():\n    pass\n",
        "pkg/b.py": "def _helper():\n    pass\n",
    })
    assert cycles(import_graph(modules, lazy=False)) == [["pkg", "pkg.a"]]
    assert private_imports(modules) == ["pkg.a:2: from pkg.b import _helper"]
