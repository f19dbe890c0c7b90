"""How gemmacpp.distributed cuts work into shards (pure Python, no Ray): shards are runs of whole
batches that keep requests sharing a context together; encoding chunks cover every item once; a
harvest's layout gives each shard exactly its tokens from batches aligned as one process runs
them. And the single-process path never imports Ray."""
import subprocess
import sys

import numpy as np
import pytest

from gemmacpp.eval.scoring import plan_batches
from util import child_env


@pytest.fixture
def plan():
    return pytest.importorskip("gemmacpp.distributed.plan")  # gemmacpp.distributed needs Ray


def test_shards_are_runs_of_whole_batches_keeping_contexts_together(plan, rng):
    contexts = [[2] + rng.integers(3, 50, size=int(rng.integers(1, 6))).tolist() for _ in range(9)]
    pairs = [(contexts[int(rng.integers(0, 9))], [int(rng.integers(3, 50))] * int(rng.integers(1, 4)))
             for _ in range(60)]
    _, batches = plan_batches(pairs, 64, batch_size=4)
    key = lambda b, first: b[0][1] if first else b[-1][1]  # noqa: E731
    for n in (1, 3, 8, 100):
        shards = plan.shard_batches(batches, n, key)
        assert [b for s in shards for b in s] == list(range(len(batches)))  # all, once, in order
        assert len(shards) <= n
        for left, right in zip(shards, shards[1:]):  # no context on both sides of a boundary
            assert batches[left[-1]][-1][1] != batches[right[0]][0][1]
    # the plain split where nothing is shared
    assert plan.shard_batches([[0]] * 7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert plan.shard_batches([], 4) == []


def test_chunks_cover_every_item_once(plan):
    for n, parts in [(0, 3), (1, 3), (10, 3), (10, 10), (3, 8)]:
        got = plan.chunks(n, parts)
        assert [i for r in got for i in r] == list(range(n)) and all(len(r) for r in got)
        assert len(got) == min(n, parts)


@pytest.mark.parametrize("shard_tokens,batch_size", [(1, 1), (5, 2), (7, 3), (100, 4)])
def test_harvest_layout_gives_each_shard_its_tokens(plan, rng, shard_tokens, batch_size):
    kept = rng.integers(0, 6, size=17).tolist()
    stream = np.repeat(np.arange(len(kept)), kept)  # the text of each kept token, in order
    layout = plan.harvest_layout(kept, shard_tokens, batch_size)
    assert [s["index"] for s in layout] == list(range(len(layout)))
    assert sum(s["tokens"] for s in layout) == len(stream)
    for s in layout:
        texts = s["texts"]
        assert texts.start % batch_size == 0 and (texts.stop % batch_size == 0 or texts.stop == len(kept))
        covered = np.repeat(np.arange(texts.start, texts.stop), kept[texts.start:texts.stop])
        begin = s["index"] * shard_tokens
        np.testing.assert_array_equal(covered[s["skip"]:s["skip"] + s["tokens"]],
                                      stream[begin:begin + s["tokens"]])
    assert plan.harvest_layout([0, 0], 4, 2) == []


def test_the_single_process_path_does_not_import_ray():
    code = ("import sys, gemmacpp as gc\n"
            "m = gc.load(); m.loglikelihood([('a', ' b')]); m.generate('a', max_new_tokens=1)\n"
            "import gemmacpp.eval.tasks, gemmacpp.eval.scoring, gemmacpp.generate\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
