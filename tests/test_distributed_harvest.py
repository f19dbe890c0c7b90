"""gemmacpp.distributed.Pool.harvest on a local Ray cluster (2 workers x 1 thread) against
gc.harvest in one process with 2 threads, on the default model: every shard file is the same,
byte for byte, and so is the manifest, which the single-process reader reads (also when a worker
dies holding a shard); an interrupted run
resumes to the same bytes; a changed corpus is refused; a worker's error (a bad hook name) is
raised as it was raised there."""
import json
import os

import pytest

ray = pytest.importorskip("ray")

import gemmacpp as gc
from ray_cluster import cluster  # noqa: F401  (the module's fixture)

NAMES = ["blocks.1.hook_resid_post", "blocks.2.attn.hook_z"]
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello", "Bees make honey and wax.",
         [2, 651, 6037, 563, 496], "Once upon a time there was a king.", "1 2 3 4 5 6 7 8",
         "A", "The sky is blue because of Rayleigh scattering.", [651, 6037], "Roses are red."]
SETTINGS = dict(shard_tokens=13, batch_size=3, max_len=12)  # float32: batching shows in the bits


@pytest.fixture(scope="module")
def model():
    before = gc.get_num_threads()
    yield gc.load(threads=2)
    gc.set_num_threads(before)


@pytest.fixture(scope="module")
def pool(cluster, model):
    with gc.distributed.Pool(workers=2, threads=1) as p:
        yield p


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("one_process"))
    return out, gc.harvest(model, TEXTS, NAMES, out, progress=False, **SETTINGS)


def files(out_dir):
    return {f: open(os.path.join(out_dir, f), "rb").read() for f in sorted(os.listdir(out_dir))}


def test_shards_and_manifest_equal_one_process_bytewise(pool, reference, tmp_path):
    ref_dir, ref_manifest = reference
    seen, listed = [], []

    def progress(n):  # the manifest on disk as each shard comes in: a prefix of complete shards
        seen.append(n)
        if not (tmp_path / "manifest.json").exists():  # shard 0 is not in yet
            return listed.append(0)
        on_disk = json.load(open(tmp_path / "manifest.json"))
        assert not on_disk["complete"]
        assert all(os.path.exists(tmp_path / s["file"]) for s in on_disk["shards"])
        assert on_disk["shards"] == ref_manifest["shards"][:len(on_disk["shards"])]
        listed.append(len(on_disk["shards"]))

    pool._kill_first = {"harvest_shard": {1}}  # the worker writing shard 1 dies before it does
    try:
        manifest = pool.harvest(TEXTS, NAMES, str(tmp_path), progress=progress, **SETTINGS)
    finally:
        pool._kill_first = {}
    assert manifest == ref_manifest and len(manifest["shards"]) > 2
    assert listed[-1] == len(manifest["shards"])
    assert files(str(tmp_path)) == files(ref_dir)  # shards and manifest, byte for byte
    assert sum(seen) == len(manifest["shards"])
    assert [s["tokens"] for s in gc.sae.read_manifest(str(tmp_path))["shards"]][0] == 13
    assert len(list(gc.sae.shards(str(tmp_path)))) == len(manifest["shards"])


def test_an_interrupted_run_resumes_to_the_same_bytes(pool, reference, tmp_path):
    ref_dir, ref_manifest = reference
    out = str(tmp_path)
    pool.harvest(TEXTS, NAMES, out, progress=False, **SETTINGS)
    partial = dict(ref_manifest, shards=ref_manifest["shards"][:2], complete=False, texts=0,
                   tokens=sum(s["tokens"] for s in ref_manifest["shards"][:2]))
    for s in ref_manifest["shards"][2:]:
        os.remove(os.path.join(out, s["file"]))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(partial, f, indent=1)
    with pytest.raises(ValueError, match="texts differ"):
        pool.harvest(TEXTS[::-1], NAMES, out, progress=False, **SETTINGS)
    pool.harvest(TEXTS, NAMES, out, progress=False, **SETTINGS)
    assert files(out) == files(ref_dir)
    # the single-process harvest takes the distributed run as complete
    model = gc.load()
    assert gc.harvest(model, TEXTS, NAMES, out, progress=False, **SETTINGS) == ref_manifest


def test_a_worker_error_is_raised_here(pool, tmp_path):
    with pytest.raises(ValueError, match="no hook point named 'blocks.99.hook_resid_post'"):
        pool.harvest(TEXTS, ["blocks.99.hook_resid_post"], str(tmp_path), progress=False)
    with pytest.raises(ValueError, match=r"texts\[1\] has no tokens"):
        pool.harvest(["a", []], NAMES, str(tmp_path / "empty"), progress=False)
