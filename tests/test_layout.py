"""The C++ core's layering (docs/design.md): data flows one way, bindings -> models -> nn -> ops ->
cpu | cuda -> core, with models and nn reading files through io. Each folder may include only the
folders listed for it, so that, for one, no model or block calls a CPU kernel directly (they call
ops, which pick the device) and the core knows no backend."""
import os
import pathlib
import re

import pytest

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"

ALLOWED = {
    "core": {"core"},
    "cpu": {"core", "cpu"},
    "cuda": {"core", "cuda"},
    "ops": {"core", "cpu", "cuda", "ops"},
    "io": {"core", "io"},
    "tokenizer": {"core", "io", "tokenizer"},
    "nn": {"core", "io", "ops", "nn"},
    "models": {"core", "io", "ops", "nn", "models"},
    "bindings": {"core", "cpu", "cuda", "io", "ops", "tokenizer", "nn", "models", "bindings"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"csrc/([^/"]+)/', re.M)


def includes(path):
    return INCLUDE.findall(path.read_text(encoding="utf-8"))


def test_every_folder_has_a_rule():
    folders = {p.name for p in CSRC.iterdir() if p.is_dir()}
    assert folders == set(ALLOWED), folders ^ set(ALLOWED)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_includes_follow_the_layering(folder):
    bad = []
    for path in sorted((CSRC / folder).rglob("*")):
        if path.suffix not in (".h", ".cc", ".cu", ".cuh"):
            continue
        for target in includes(path):
            if target not in ALLOWED[folder]:
                bad.append(f"{path.relative_to(CSRC)} includes csrc/{target}/")
    assert not bad, "\n".join(bad)


def test_rule_catches_a_model_calling_a_cpu_kernel(tmp_path):
    fake = tmp_path / "gemma.cc"
    fake.write_text('#include "csrc/nn/attention.h"\n#include "csrc/cpu/attention.h"\n')
    assert [t for t in includes(fake) if t not in ALLOWED["models"]] == ["cpu"]


def test_test_file_names_are_unique():
    """pytest imports test files by basename (rootdir-relative packages are not used here): two
    tests/**/test_X.py of the same name stop the whole run at collection."""
    root = os.path.dirname(os.path.abspath(__file__))
    seen = {}
    for folder, _, files in os.walk(root):
        for f in files:
            if f.startswith("test_") and f.endswith(".py"):
                assert f not in seen, f"{f} is in both {seen[f]} and {folder}"
                seen[f] = folder
