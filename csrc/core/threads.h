// One process-wide pool of worker threads. Work is split into tasks whose boundaries never depend
// on the number of threads, and each task writes its own outputs, so results are bitwise identical
// whatever set_num_threads says.
#pragma once

#include <cstdint>
#include <functional>

namespace gemmacpp {

void set_num_threads(int n);  // n >= 1; 0 means "as many as this process may use"
int get_num_threads();

// Calls fn(task, thread) for every task in [0, n_tasks); thread < get_num_threads() names a slot
// for per-thread scratch. Returns when all tasks are done; rethrows the first exception thrown.
// Called from inside a task (nested), or while another parallel_for runs, it runs serially.
void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

// parallel_for over [0, n) in fixed chunks: fn(begin, length) for each chunk of `chunk` elements
// (the last may be shorter). The split depends on n and chunk only.
template <class Fn>
void parallel_chunks(int64_t n, int64_t chunk, const Fn& fn) {
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c, int) {
    const int64_t begin = c * chunk;
    fn(begin, n - begin < chunk ? n - begin : chunk);
  });
}

}  // namespace gemmacpp
