"""A local Ray cluster for the gemmacpp.distributed tests: started on 127.0.0.1 inside the test
process (no other address), stopped after the module. Four logical CPUs, so that a pool of two
1-thread workers and a second pool (the fault tests) can both be placed."""
import pytest


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        # Ray's memory monitor kills workers when the machine is nearly full, whoever fills it:
        # on a shared machine that is another process's doing, not a fault under test.
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")
        ray.init(address="local", num_cpus=4,  # a new cluster, whatever `ray start` left include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
