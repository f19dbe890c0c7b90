"""gemmacpp.distributed.Pool on a local Ray cluster (2 workers x 1 thread) against one process
with 2 threads, on the default model: scoring, rolling scoring and greedy generation give the
same results bitwise, in input order; a worker killed mid-shard has its shard run elsewhere
(nothing lost, nothing counted twice); a model path a worker cannot open fails the pool with the
worker's error; empty request lists; a too-long request is named while the others are answered."""
import os
import signal
import time

import pytest

ray = pytest.importorskip("ray")

import gemmacpp as gc
from gemmacpp.generate import encode_prompt, generate_until
from ray_cluster import cluster  # noqa: F401  (the module's fixture)

REQUESTS = [("The capital of France is", " Paris"), ("The capital of France is", " Lyon"),
            ("2 + 2 =", " 4"), ("2 + 2 =", " 5"), ("2 + 2 =", " four"),
            ("Bees make", " honey"), ("Bees make", " milk"),
            ("Once upon a time", " there was a king who had three daughters."),
            ("", "Hello world"), ("The sky is", " blue"), ("The sky is", ""), ([2, 651, 6037], [1234])]
TEXTS = ["The quick brown fox jumps over the lazy dog. " * 4, "Hello there", "a b c d e f g",
         [651, 6037, 563]]
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3,", [2, 818, 5279, 529],
           "Roses are red,", "def main():"]


@pytest.fixture(scope="module")
def model():
    before = gc.get_num_threads()
    yield gc.load(threads=2)  # the kernels give the same bits at any thread count
    gc.set_num_threads(before)


@pytest.fixture(scope="module")
def pool(cluster, model):
    with gc.distributed.Pool(workers=2, threads=1, shards_per_worker=2) as p:  # shards of several batches
        yield p


def test_workers_hold_the_model_with_one_thread(pool, model):
    assert len(pool.worker_info()) == 2 and len({i["pid"] for i in pool.worker_info()}) == 2
    assert all(i["threads"] == 1 and i["path"] == model.path for i in pool.worker_info())
    assert gc.get_num_threads() == 2


def test_loglikelihood_equals_one_process_bitwise(pool, model):
    seen = []
    got = pool.loglikelihood(REQUESTS, batch_size=3, progress=seen.append)
    assert got == model.loglikelihood(REQUESTS, batch_size=3)
    assert sum(seen) == sum(1 for _, c in REQUESTS if c) and len(seen) > 1  # several shards
    assert pool.loglikelihood(REQUESTS, shared_prefix=False, max_length=10) == \
        model.loglikelihood(REQUESTS, shared_prefix=False, max_length=10)


def test_rolling_equals_one_process_bitwise(pool, model):
    got = pool.loglikelihood_rolling(TEXTS, max_length=8, context_len=3, batch_size=2, progress=False)
    assert got == model.loglikelihood_rolling(TEXTS, max_length=8, context_len=3, batch_size=2)


def test_greedy_generation_equals_one_process_bitwise(pool, model):
    for batch_size in (1, 4):  # shards of several batches; batches of several rows
        got = pool.generate(PROMPTS, max_new_tokens=6, batch_size=batch_size, stop=["\n\n"],
                            progress=False)
        ids = [encode_prompt(model, p) for p in PROMPTS]
        assert got == generate_until(model, ids, max_new_tokens=6, stops=["\n\n"],
                                     batch_size=batch_size)
    assert all(isinstance(t, str) and t for t in got)


def test_empty_request_lists(pool):
    assert pool.loglikelihood([]) == []
    assert pool.loglikelihood_rolling([]) == []
    assert pool.generate([]) == []


def test_a_too_long_request_is_named_and_the_others_answered(pool, model):
    reqs = REQUESTS[:4] + [("Count:", " one two three four five six seven eight nine ten")] + REQUESTS[4:7]
    with pytest.raises(gc.distributed.RequestError, match="request 4: the continuation has") as e:
        pool.loglikelihood(reqs, max_length=6, batch_size=2, progress=False)
    assert list(e.value.errors) == [4]
    others = reqs[:4] + reqs[5:]
    assert e.value.results[:4] + e.value.results[5:] == model.loglikelihood(others, max_length=6,
                                                                            batch_size=2)
    assert e.value.results[4] is None
    ids = [encode_prompt(model, p) for p in PROMPTS]
    with pytest.raises(gc.distributed.RequestError, match="prompt 2: .* exceed max_length=12") as e:
        pool.generate_until(ids, max_new_tokens=6, max_length=12, progress=False)
    assert list(e.value.errors) == [2] and e.value.results[2] is None
    keep = [0, 1, 3, 4, 5]
    assert [e.value.results[i] for i in keep] == \
        generate_until(model, [ids[i] for i in keep], max_new_tokens=6)


def test_a_killed_worker_has_its_shard_run_elsewhere(pool, model):
    before = {i["pid"] for i in pool.worker_info()}
    pool._kill_first = {"score": {1}}  # the worker that takes shard 1 dies holding it
    seen = []
    try:
        got = pool.loglikelihood(REQUESTS, batch_size=2, progress=seen.append)
    finally:
        pool._kill_first = {}
    assert got == model.loglikelihood(REQUESTS, batch_size=2)  # nothing lost or doubled
    assert sum(seen) == sum(1 for _, c in REQUESTS if c)        # each shard counted once
    assert len(pool._actors) == 1                               # the dead one is gone
    # the next call starts a replacement, which loads the model and answers
    assert pool.loglikelihood(REQUESTS[:3], progress=False) == model.loglikelihood(REQUESTS[:3])
    after = {i["pid"] for i in pool.worker_info()}
    assert len(after) == 2 and len(after & before) == 1


def test_a_worker_killed_from_outside_between_calls(pool, model):
    os.kill(pool.worker_info()[0]["pid"], signal.SIGKILL)
    time.sleep(0.5)
    assert pool.loglikelihood(REQUESTS, batch_size=2, progress=False) == \
        model.loglikelihood(REQUESTS, batch_size=2)
    assert len(pool.worker_info()) == 2  # replaced at the start of the next call


def test_losing_every_worker_is_an_error_not_a_hang(cluster, model):
    with gc.distributed.Pool(workers=1, threads=1) as one:
        one._kill_first = {"score": {0}}
        with pytest.raises(gc.distributed.AllWorkersLost, match="every worker died"):
            one.loglikelihood(REQUESTS[:3], progress=False)
        one._kill_first = {}
        assert one.loglikelihood(REQUESTS[:3], progress=False) == model.loglikelihood(REQUESTS[:3])


def test_a_worker_that_cannot_load_the_model_fails_the_pool(cluster, tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        gc.distributed.Pool(str(tmp_path / "missing.gguf"), workers=2, threads=1)
    assert time.perf_counter() - start < 120  # the error, not a hang
    with pytest.raises(TimeoutError, match="did not start"):  # more CPUs than the cluster has
        gc.distributed.Pool(workers=1, threads=64, start_timeout=2)


def test_a_worker_error_is_raised_here_and_the_pool_goes_on(pool, model):
    with pytest.raises(TypeError, match="expected token ids"):  # raised by a worker's tokenization
        pool.loglikelihood(REQUESTS * 2 + [("a", 5)], progress=False)
    assert pool.loglikelihood(REQUESTS[:2], progress=False) == model.loglikelihood(REQUESTS[:2])


def test_progress_bar(pool, capsys):
    pool.loglikelihood(REQUESTS[:4])
    assert "loglikelihood" in capsys.readouterr().err


def test_cli_eval_on_ray_equals_one_process(cluster, tmp_path, monkeypatch):
    import json
    import os

    from gemmacpp.__main__ import main
    task = os.path.join(os.path.dirname(__file__), "data", "tasks", "tiny_mc.jsonl")
    args = [task, "--limit", "4", "--batch-size", "3"]
    assert main(["eval", *args, "--output", str(tmp_path / "one.json")]) == 0
    assert main(["eval", *args, "--ray", "--workers", "2", "--threads", "1",
                 "--output", str(tmp_path / "ray.json")]) == 0
    one, on_ray = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "ray.json"))
    assert on_ray["samples"] == one["samples"] and on_ray["metrics"] == one["metrics"]
    assert on_ray["model"] == one["model"]


def test_lm_eval_backend_data_parallel_equals_one_process(cluster, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    import os

    from lm_eval.tasks import TaskManager

    from gemmacpp.eval.lm_eval_backend import GemmaCppLM
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(lm):
        return lm_eval.simple_evaluate(
            model=lm, tasks=["gemmacpp_tiny_mc", "gemmacpp_tiny_gen", "gemmacpp_tiny_docs"],
            limit=3, task_manager=TaskManager(include_path="tests/data/tasks", include_defaults=False),
            log_samples=True)
    one = run(GemmaCppLM(max_length=64, max_gen_toks=8, batch_size=2))
    lm = GemmaCppLM(max_length=64, max_gen_toks=8, batch_size=2, workers=2, threads=1)
    try:
        on_ray = run(lm)
    finally:
        lm.pool.close()
    for task, samples in one["samples"].items():
        assert [s["resps"] for s in on_ray["samples"][task]] == [s["resps"] for s in samples]
    assert on_ray["results"] == one["results"]
