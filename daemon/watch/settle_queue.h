// SettleQueue: the one settle step between a watcher (watcher.h) and the
// work its events cause, for live ingestion and watched roots alike (as
// watchman's PendingCollection and settle period). A key — a file, a root, a
// piece of work — is due once it has been quiet for its quiet delay since
// its latest change, and at the latest its max delay after the first change
// since it was last taken, so a file written without pause is still taken.
// (Precisely: no later than any change's time plus the max delay given with
// it, so work added with a short max delay is never put off by a longer
// one added after it.)
// Time comes from base/clock.h's Clock: tests step it with a fake clock
// instead of sleeping.
//
// Each key carries a Value the caller merges changes into (Add returns it):
// the reason of a rescan, say. Keys are kept in order (std::map), so a
// caller can drop a range of them (EraseIf).
//
// Thread-safety: thread-compatible; its owner guards it with its own mutex.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"

namespace amld::daemon {

struct SettleDelays {
  // Due this long after the latest change...
  absl::Duration quiet = absl::ZeroDuration();
  // ...but no later than this after the first change since it was taken
  // (see the file comment).
  absl::Duration max = absl::ZeroDuration();
};

template <typename Key, typename Value = std::monostate>
class SettleQueue {
 public:
  SettleQueue(const base::Clock* clock, SettleDelays delays) : clock_(clock), delays_(delays) {}

  // Records a change of `key` now, with the queue's delays or `delays`.
  // Returns its value, to merge the change into.
  Value& Add(const Key& key) { return Add(key, delays_); }
  Value& Add(const Key& key, SettleDelays delays) {
    const absl::Time now = clock_->Now();
    auto [it, added] = items_.try_emplace(key);
    Item& item = it->second;
    if (added) {
      item.deadline = now + delays.max;
    } else {
      by_due_.erase({item.due, key});
      item.deadline = std::min(item.deadline, now + delays.max);
    }
    item.due = std::min(item.deadline, now + delays.quiet);
    by_due_.emplace(item.due, key);
    return item.value;
  }

  // Removes and returns the keys due by the clock's now, earliest first.
  std::vector<std::pair<Key, Value>> TakeDue() {
    const absl::Time now = clock_->Now();
    std::vector<std::pair<Key, Value>> out;
    while (!by_due_.empty() && by_due_.begin()->first <= now) {
      auto node = items_.extract(by_due_.begin()->second);
      by_due_.erase(by_due_.begin());
      out.emplace_back(std::move(node.key()), std::move(node.mapped().value));
    }
    return out;
  }

  // Removes `key` whether due or not; its value, if it was queued.
  std::optional<Value> Take(const Key& key) {
    auto it = items_.find(key);
    if (it == items_.end()) return std::nullopt;
    by_due_.erase({it->second.due, key});
    Value v = std::move(it->second.value);
    items_.erase(it);
    return v;
  }

  // Removes every key for which `pred(key)` holds.
  template <typename Pred>
  void EraseIf(Pred pred) {
    for (auto it = items_.begin(); it != items_.end();) {
      if (pred(it->first)) {
        by_due_.erase({it->second.due, it->first});
        it = items_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // When the earliest key is due; absl::InfiniteFuture() when none is queued.
  absl::Time NextDue() const {
    return by_due_.empty() ? absl::InfiniteFuture() : by_due_.begin()->first;
  }
  bool contains(const Key& key) const { return items_.contains(key); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

 private:
  struct Item {
    absl::Time deadline;
    absl::Time due;
    Value value{};
  };

  const base::Clock* clock_;
  SettleDelays delays_;
  std::map<Key, Item> items_;
  std::set<std::pair<absl::Time, Key>> by_due_;
};

}  // namespace amld::daemon
