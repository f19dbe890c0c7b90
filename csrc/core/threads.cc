#include "csrc/core/threads.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "csrc/core/error.h"

namespace gemmacpp {
namespace {

int available_cpus() {
#if defined(__linux__)  // the CPUs this process may run on; macOS has no affinity masks
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

thread_local bool tls_inside_task = false;

// How long idle workers and a waiting caller poll before they sleep.
constexpr int kSpinMicros = 20;

class Pool {
 public:
  Pool() { resize(available_cpus()); }
  ~Pool() { stop_workers(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    std::lock_guard<std::mutex> run(run_mutex_);
    stop_workers();
    stopping_.store(false);
    // New workers start at the current generation: one that started at 0 after earlier runs would
    // take the last (finished) run for a new one and decrement pending_workers_ below zero, and the
    // next run() would then wait for pending_workers_ == 0 forever.
    const uint64_t gen = generation_.load();
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
      pending_workers_.store(int(workers_.size()));
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();  // no system call when every worker is still spinning
    work(0);
    // The workers finish within microseconds of this thread in the usual case: poll before
    // sleeping on the condition variable.
    if (!spin_until([this] { return pending_workers_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(mutex_);
      done_.wait(lk, [this] { return pending_workers_.load() == 0; });
    }
    std::lock_guard<std::mutex> lk(mutex_);
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

  // Polls done() for about kSpinMicros; true as soon as it holds. A model's forward pass runs a
  // few hundred short parallel regions per token (tens of microseconds each): waking a worker
  // from a condition variable costs about as much as the region itself, so workers and the
  // caller poll first and only then sleep.
  template <class Done>
  static bool spin_until(const Done& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (done()) return true;
        cpu_relax();
      }
      if (std::chrono::steady_clock::now() > until) return done();
    }
  }

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  void worker_loop(int thread, uint64_t seen) {
    for (;;) {
      const auto started = [&] {
        return stopping_.load(std::memory_order_acquire) ||
               generation_.load(std::memory_order_acquire) != seen;
      };
      if (!spin_until(started)) {
        std::unique_lock<std::mutex> lk(mutex_);
        wake_.wait(lk, started);
      }
      if (stopping_.load()) return;
      {
        // The run's fields were written under mutex_ before generation_ changed.
        std::lock_guard<std::mutex> lk(mutex_);
        seen = generation_.load();
      }
      work(thread);
      if (pending_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mutex_);  // the caller may be between its check and wait
        done_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      stopping_.store(true);
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
  std::atomic<int> pending_workers_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
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
