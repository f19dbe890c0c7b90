"""Typing: the package is marked typed (py.typed, PEP 561) and its compiled module has a stub,
_core.pyi, that names every public member of _core (scripts/gen_stubs.sh regenerates it)."""
import ast
import os

import gemmacpp as gc

PKG = os.path.dirname(os.path.abspath(gc.__file__))


def stub_members(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names, tree


def test_package_is_marked_typed():
    assert os.path.isfile(os.path.join(PKG, "py.typed"))


def test_core_stub_names_every_public_member():
    names, tree = stub_members(os.path.join(PKG, "_core.pyi"))
    public = {n for n in dir(gc._core) if not n.startswith("_")}
    missing = public - names
    assert not missing, f"_core.pyi lacks {sorted(missing)}: run scripts/gen_stubs.sh"
    stale = {n for n in names if not n.startswith("_")} - public - {"annotations"}
    assert not stale, f"_core.pyi names what _core does not have: {sorted(stale)}"


def test_public_api_has_type_hints():
    import inspect
    for fn in (gc.load, gc.Model.forward, gc.Model.run_with_cache, gc.Model.run_with_hooks,
               gc.Model.loglikelihood, gc.Model.to_tokens):
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, fn.__qualname__
