// ThreadSanitizer annotations for Debian's absl::Mutex and absl::CondVar
// (make test-tsan only; the "tsan" preset links this library first into
// every test, so its definitions win over libabsl_synchronization.so's).
//
// Why: amld locks with absl::Mutex, whose Lock/Unlock live in Debian's
// uninstrumented libabsl_synchronization.so and are built from atomics and
// futexes, not pthread calls TSan intercepts. Without this, TSan sees no
// happens-before edge at any amld lock and reports every guarded field as a
// race. Each wrapper calls the real function (dlsym RTLD_NEXT) and tells
// TSan "acquire" after a lock and "release" before an unlock, keyed by the
// mutex's address; CondVar waits and Mutex::Await release and reacquire.
// A Condition (LockWhen, Await) is evaluated inside absl with the lock held,
// by the waiting thread or by the one unlocking: it is wrapped so that each
// evaluation acquires before and releases after, as if it were a critical
// section of its own, else its reads would race with the next holder.
// gRPC's own locks (gpr_mu is absl::Mutex in Debian's gRPC) get the same
// edges through the same symbols; its lock-free atomics do not (the limit
// written down in docs/ARCHITECTURE.md, "Testing").
//
// AMLD_TSAN_UNANNOTATED=1 turns the annotations off (the calls still go to
// absl), to see what TSan reports without them.
//
// Readers acquire and release like writers, which orders readers among
// themselves: that can hide a write made under a reader lock, never invent a
// race.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

// The real function of mangled name `name`, looked up once.
template <typename F>
F Real(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found after this library\n", name);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

#define AMLD_REAL(type, mangled)                      \
  static const auto real = Real<type>(mangled);

bool Annotated() {
  static const bool on = [] {
    const char* off = std::getenv("AMLD_TSAN_UNANNOTATED");
    return off == nullptr || std::string_view(off) != "1";
  }();
  return on;
}

void Acquire(const void* mu) {
  if (Annotated()) __tsan_acquire(const_cast<void*>(mu));
}
void Release(const void* mu) {
  if (Annotated()) __tsan_release(const_cast<void*>(mu));
}

// A Condition that evaluates `cond` between an acquire and a release of `mu`.
struct Guarded {
  const absl::Condition* cond;
  const void* mu;
  static bool Eval(Guarded* g) {
    Acquire(g->mu);
    const bool r = g->cond->Eval();
    Release(g->mu);
    return r;
  }
};

}  // namespace

// The mangled names below are Debian 12's (inline namespace absl::debian3);
// a mismatch aborts at the first lock with the name that was not found.
namespace absl {
inline namespace debian3 {

void Mutex::Lock() {
  using F = void (*)(Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  Acquire(this);
}

void Mutex::ReaderLock() {
  using F = void (*)(Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  Acquire(this);
}

void Mutex::Unlock() {
  using F = void (*)(Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex6UnlockEv");
  Release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  using F = void (*)(Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Release(this);
  real(this);
}

bool Mutex::TryLock() {
  using F = bool (*)(Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex7TryLockEv");
  bool got = real(this);
  if (got) Acquire(this);
  return got;
}

bool Mutex::ReaderTryLock() {
  using F = bool (*)(Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  bool got = real(this);
  if (got) Acquire(this);
  return got;
}

void Mutex::LockWhen(const Condition& cond) {
  using F = void (*)(Mutex*, const Condition&);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  real(this, absl::Condition(&Guarded::Eval, &g));
  Acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  using F = void (*)(Mutex*, const Condition&);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  real(this, absl::Condition(&Guarded::Eval, &g));
  Acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  using F = bool (*)(Mutex*, const Condition&, absl::Duration);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  bool r = real(this, absl::Condition(&Guarded::Eval, &g), timeout);
  Acquire(this);  // held either way
  return r;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  using F = bool (*)(Mutex*, const Condition&, absl::Time);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  bool r = real(this, absl::Condition(&Guarded::Eval, &g), deadline);
  Acquire(this);
  return r;
}

void Mutex::Await(const Condition& cond) {
  using F = void (*)(Mutex*, const Condition&);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Release(this);
  Guarded g{&cond, this};
  real(this, absl::Condition(&Guarded::Eval, &g));
  Acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  using F = bool (*)(Mutex*, const Condition&, absl::Duration);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Release(this);
  Guarded g{&cond, this};
  bool r = real(this, absl::Condition(&Guarded::Eval, &g), timeout);
  Acquire(this);
  return r;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  using F = bool (*)(Mutex*, const Condition&, absl::Time);
  AMLD_REAL(F, "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Release(this);
  Guarded g{&cond, this};
  bool r = real(this, absl::Condition(&Guarded::Eval, &g), deadline);
  Acquire(this);
  return r;
}

void CondVar::Wait(Mutex* mu) {
  using F = void (*)(CondVar*, Mutex*);
  AMLD_REAL(F, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  real(this, mu);
  Acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  using F = bool (*)(CondVar*, Mutex*, absl::Duration);
  AMLD_REAL(F, "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  bool r = real(this, mu, timeout);
  Acquire(mu);
  return r;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  using F = bool (*)(CondVar*, Mutex*, absl::Time);
  AMLD_REAL(F, "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  bool r = real(this, mu, deadline);
  Acquire(mu);
  return r;
}

}  // namespace debian3
}  // namespace absl
