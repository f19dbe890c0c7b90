#include "csrc/core/threads.h"

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "csrc/core/error.h"

namespace gemmacpp {
namespace {

int available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  const unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

thread_local bool tls_inside_task = false;

class Pool {
 public:
  Pool() { resize(available_cpus()); }
  ~Pool() { stop_workers(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    std::lock_guard<std::mutex> run(run_mutex_);
    stop_workers();
    stopping_ = false;
    // New workers start at the current generation: one that started at 0 after earlier runs would
    // take the last (finished) run for a new one and decrement pending_workers_ below zero, and the
    // next run() would then wait for pending_workers_ == 0 forever.
    const uint64_t gen = generation_;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, gen] { worker_loop(i, gen); });
  }

  void run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
    if (n_tasks <= 0) return;
    std::unique_lock<std::mutex> run(run_mutex_, std::try_to_lock);
    if (tls_inside_task || !run.owns_lock() || workers_.empty() || n_tasks == 1) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mutex_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_.store(0);
      pending_workers_ = int(workers_.size());
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work(0);
    std::unique_lock<std::mutex> lk(mutex_);
    done_.wait(lk, [this] { return pending_workers_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(int thread) {
    tls_inside_task = true;
    for (;;) {
      const int64_t t = next_.fetch_add(1);
      if (t >= n_tasks_) break;
      try {
        (*fn_)(t, thread);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_tasks_);  // skip the remaining tasks
      }
    }
    tls_inside_task = false;
  }

  void worker_loop(int thread, uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mutex_);
        wake_.wait(lk, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
      }
      work(thread);
      std::lock_guard<std::mutex> lk(mutex_);
      if (--pending_workers_ == 0) done_.notify_one();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex run_mutex_;  // one parallel region at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_workers_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may outlive static destructors
  return *p;
}

}  // namespace

void set_num_threads(int n) {
  GC_CHECK(n >= 0, ValueError, "set_num_threads: n must be >= 0, got ", n);
  pool().resize(n == 0 ? available_cpus() : n);
}

int get_num_threads() { return pool().size(); }

void parallel_for(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
  pool().run(n_tasks, fn);
}

}  // namespace gemmacpp
