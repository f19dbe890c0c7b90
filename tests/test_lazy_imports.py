"""`import gemmacpp` leaves out what most programs never use: ml_dtypes (bfloat16 arrays; its
import registers NumPy ufunc loops, about half of gemmacpp's import time) is imported on the
first bfloat16 array gemmacpp hands out, and that array still comes back as bfloat16."""
import subprocess
import sys

import ml_dtypes
import numpy as np

from gemmacpp.sae.files import write_safetensors
from util import child_env


def run(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_import_leaves_ml_dtypes_out():
    assert run("import sys, gemmacpp; print('ml_dtypes' in sys.modules)") == ["False"]


def test_bfloat16_weights_import_it_when_read(tmp_path):
    path = str(tmp_path / "w.safetensors")
    write_safetensors(path, {"w": np.array([0.5, -2.0, 3.0], np.float32).astype(ml_dtypes.bfloat16)})
    code = (f"import sys, numpy as np, gemmacpp as gc\n"
            f"f = gc.weights.open({path!r})\n"
            f"print('ml_dtypes' in sys.modules)\n"
            f"a = f['w']\n"
            f"print('ml_dtypes' in sys.modules, a.dtype, *a.astype(np.float32).tolist())\n")
    assert run(code) == ["False", "True", "bfloat16", "0.5", "-2.0", "3.0"]
