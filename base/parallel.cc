#include "base/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace amld::base {

absl::Status ParallelFor(size_t n, int threads, const std::function<absl::Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  size_t failed_index = SIZE_MAX;
  absl::Status first_error;
  auto work = [&] {
    while (!failed.load(std::memory_order_relaxed)) {
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      absl::Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < failed_index) {
          failed_index = i;
          first_error = s;
        }
        failed = true;
      }
    }
  };
  size_t want = std::min<size_t>(std::max(threads, 1), n);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < want; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads is still correct
    }
  }
  work();
  for (std::thread& t : pool) t.join();
  return first_error;
}

int ResolveThreads(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace amld::base
