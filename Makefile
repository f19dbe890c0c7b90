# The two commands README.md promises; each sets up everything it needs first.
.PHONY: demo test bench setup

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
