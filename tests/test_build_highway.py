"""The Highway fallback of CMakeLists.txt: with GEMMACPP_HWY=FETCH (or AUTO and no Highway
installed) CMake builds the pinned Highway release with FetchContent and links it statically.
CI has no network, so this configures with FetchContent's source-dir override pointing at a
stand-in source tree (a CMakeLists.txt whose static `hwy` library wraps the installed headers),
and checks the plumbing: the override is used offline, the module links the static archive, and
no shared libhwy. Configure only (seconds); building the real pinned release is
`make wheel-check` (docs/development.md)."""
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STAND_IN = """cmake_minimum_required(VERSION 3.10)
project(hwy CXX)
add_library(hwy STATIC stand_in.cc)
target_include_directories(hwy PUBLIC {include})
"""


def cmake():
    exe = shutil.which("cmake")
    if exe is None:  # the cmake PyPI package, as scikit-build-core uses
        try:
            import cmake as cmake_pkg
        except ImportError:
            pytest.skip("no cmake")
        exe = os.path.join(cmake_pkg.CMAKE_BIN_DIR, "cmake")
    return exe


def configure(tmp_path, *defines):
    build = tmp_path / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    proc = subprocess.run([cmake(), "-S", REPO, "-B", str(build), *gen, "-DGEMMACPP_CUDA=OFF",
                           *defines], capture_output=True, text=True, timeout=300)
    return proc, build


def test_fetch_uses_the_source_override_offline_and_links_statically(tmp_path):
    include = "/usr/include" if os.path.exists("/usr/include/hwy/highway.h") else None
    if include is None:
        pytest.skip("the stand-in wraps the installed Highway headers")
    src = tmp_path / "highway-src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(STAND_IN.format(include=include))
    (src / "stand_in.cc").write_text("int gemmacpp_stand_in_hwy = 0;\n")
    proc, build = configure(tmp_path, "-DGEMMACPP_HWY=FETCH", f"-DFETCHCONTENT_SOURCE_DIR_HIGHWAY={src}",
                            "-DFETCHCONTENT_FULLY_DISCONNECTED=ON")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "building the pinned release" in proc.stdout
    rules = "".join(p.read_text() for p in build.glob("*.ninja")) if (build / "build.ninja").exists() \
        else "".join(p.read_text() for p in build.rglob("link.txt"))
    link = [l for l in rules.splitlines() if "_core" in l and ("libhwy" in l or "-lhwy" in l)]
    assert link, "the module's link does not name Highway"
    assert all(re.search(r"_deps/highway-build/libhwy\.a", l) for l in link), link
    assert not re.search(r"libhwy\.so|-lhwy\b", rules)


def test_pinned_release_is_a_url_and_a_hash():
    text = open(os.path.join(REPO, "CMakeLists.txt")).read()
    url = re.search(r'set\(GEMMACPP_HWY_URL "([^"]+)"\)', text).group(1)
    sha = re.search(r'set\(GEMMACPP_HWY_SHA256 "([0-9a-f]+)"\)', text).group(1)
    assert url.startswith("https://") and url.endswith(".tar.gz") and len(sha) == 64
    assert 'URL_HASH "SHA256=${GEMMACPP_HWY_SHA256}"' in text
