"""Running shards on a set of Ray actors: each idle worker takes the next shard; a worker that
dies (its process or machine lost) is dropped and its shard goes back to the queue, to run on
another worker; an error raised by the work itself ends the run with that error."""
from __future__ import annotations

from collections import deque


class AllWorkersLost(RuntimeError):
    """Every worker of the pool died before the work was done."""


def run_shards(actors, method: str, shards, args=(), *, sizes=None, progress=None,
               max_attempts: int = 3, on_result=None, kill_first=()) -> list:
    """The result of worker.run(method, shard, args) for each shard, in shard order. actors: the
    pool's list of live actors (dead ones are removed from it). sizes: what each shard counts for
    in progress (a callable, called once per shard when its result is in: a shard re-run after a
    lost worker is never counted twice); on_result(k, result) is called then too. kill_first: shards whose first attempt kills its worker
    (the fault tests)."""
    import ray
    from ray.exceptions import RayActorError

    pending = deque(range(len(shards)))
    attempts = [0] * len(shards)
    results = [None] * len(shards)
    idle = list(actors)
    inflight = {}
    try:
        while pending or inflight:
            while pending and idle:
                actor, k = idle.pop(0), pending.popleft()
                die = k in kill_first and attempts[k] == 0
                attempts[k] += 1
                inflight[actor.run.remote(method, shards[k], args, die)] = (k, actor)
            if not inflight:
                raise AllWorkersLost(f"every worker died; {len(pending)} shards were not run")
            [ref], _ = ray.wait(list(inflight), num_returns=1)
            k, actor = inflight.pop(ref)
            try:
                results[k] = ray.get(ref)
            except RayActorError as e:
                if actor in actors:
                    actors.remove(actor)
                if attempts[k] >= max_attempts:
                    raise AllWorkersLost(f"shard {k} lost its worker {attempts[k]} times") from e
                pending.appendleft(k)  # to the next idle worker
                continue
            idle.append(actor)
            if on_result is not None:
                on_result(k, results[k])
            if progress is not None:
                progress(sizes[k] if sizes is not None else 1)
    finally:
        for ref in inflight:  # an error ended the run: stop what the others are doing
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001  (best effort: the error being raised matters)
                pass
    return results
