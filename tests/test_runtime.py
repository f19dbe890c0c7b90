import os
import shutil
import subprocess
import sys

import pytest

import gemmacpp as gc


def test_version_is_set():
    assert gc.__version__ and gc.__version__[0].isdigit()


def test_devices_start_with_cpu():
    devices = gc.devices()
    assert devices[0] == "cpu"
    assert all(d.startswith("cuda:") for d in devices[1:])


def test_simd_target_is_one_that_was_compiled():
    assert gc.simd_target() in gc._core.simd_targets_compiled()


def test_thread_count_round_trips():
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        assert gc.get_num_threads() == 1
        gc.set_num_threads(3)
        assert gc.get_num_threads() == 3
        gc.set_num_threads(0)
        assert gc.get_num_threads() == len(os.sched_getaffinity(0))
    finally:
        gc.set_num_threads(before)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_bad_thread_count(bad, error):
    with pytest.raises(error):
        gc.set_num_threads(bad)


@pytest.mark.skipif(shutil.which("nvcc") is None or os.environ.get("GEMMACPP_CUDA") == "OFF",
                    reason="no nvcc: this build has no CUDA backend by design")
def test_cuda_backend_compiled_when_nvcc_is_present():
    assert gc._core.cuda_compiled


def test_import_and_cli_info_without_gpu():
    # A child with no visible GPU: import must work and the CPU must be listed.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-m", "gemmacpp", "info"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "devices:      cpu" in out.stdout
