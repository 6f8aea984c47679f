#include "daemon/ingest/live_ingester.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/ingest/live_ingester_run.h"
#include "daemon/executors/run_folder.h"
#include "daemon/watch/inotify.h"
#include "spdlog/spdlog.h"
#include "base/file_util.h"
#include "base/relative_path.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

using amld::storage::Artifact;
using amld::base::ScopedFd;
using live_ingester_internal::OpenFolderPath;

constexpr const char* kTrees[] = {"outputs", "logs"};

// user_logs/std_log.txt, then user_logs/std_log_process_<rank>.txt of a
// distributed run (daemon/executors/launch/), sorted.
std::vector<std::string> UserLogs(const RunPaths& paths) {
  std::vector<std::string> logs = {"user_logs/std_log.txt"};
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(paths.user_logs, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "std_log_process_") && absl::EndsWith(name, ".txt")) {
      logs.push_back("user_logs/" + name);
    }
  }
  std::sort(logs.begin() + 1, logs.end());
  return logs;
}

}  // namespace

LiveIngester::LiveIngester(LiveIngesterDeps deps, LiveIngesterOptions options)
    : deps_(std::move(deps)), options_(options), pending_(deps_.clock, SettleDelays{}) {
  if (deps_.log == nullptr) deps_.log = std::make_shared<spdlog::logger>("amld-ingest");
}

LiveIngester::~LiveIngester() = default;

IngestStats LiveIngester::stats() const {
  return IngestStats{files_read_.load(),     rescans_.load(),
                     overflows_.load(),      unknown_watch_events_.load(),
                     metrics_stored_.load(), metric_lines_skipped_.load(),
                     cas_syncs_.load()};
}

// ---------------------------------------------------------------------------
// Watching runs.

void LiveIngester::Watch(const std::string& run_id, const RunPaths& paths) {
  if (deps_.watcher == nullptr) return;
  auto run = std::make_shared<RunState>(run_id, paths, deps_.cas, options_.racy_window);
  {
    absl::MutexLock lock(&mu_);
    if (!runs_.try_emplace(run_id, std::move(run)).second) return;
    // The first scan watches the folders and takes in what is there.
    ScheduleLocked(run_id, Work::kRescan, "", absl::ZeroDuration());
  }
  deps_.watcher->Wake();
}

void LiveIngester::Forget(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  DetachLocked(run_id);
}

std::shared_ptr<LiveIngester::RunState> LiveIngester::DetachLocked(const std::string& run_id) {
  std::shared_ptr<RunState> run;
  if (auto it = runs_.find(run_id); it != runs_.end()) {
    run = std::move(it->second);
    runs_.erase(it);
    run->done = true;
  }
  if (auto it = watches_of_run_.find(run_id); it != watches_of_run_.end()) {
    for (int wd : it->second) {
      deps_.watcher->RemoveWatch(wd);
      retired_.insert(wd);
      watches_.erase(wd);
    }
    watches_of_run_.erase(it);
  }
  pending_.EraseIf([&](const WorkKey& key) { return key.run_id == run_id; });
  return run;
}

void LiveIngester::AddWatch(RunState& run, Role role, const std::string& rel, int dir_fd) {
  absl::MutexLock lock(&mu_);
  if (run.done) return;  // finished meanwhile: its watches are gone for good
  absl::StatusOr<int> wd = deps_.watcher->AddWatch(dir_fd, WatchKind::kFolderContents);
  if (!wd.ok()) {
    if (wd.status().code() == absl::StatusCode::kResourceExhausted) {
      run.mu.AssertHeld();
      run.degraded = true;
      if (!run.degraded_logged) {
        run.degraded_logged = true;
        deps_.log->warn("run {}: cannot watch {}: {}; rescanning it every {} instead. To fix: {}",
                        run.run_id, rel.empty() ? "its folder" : rel,
                        std::string(wd.status().message()),
                        absl::FormatDuration(options_.degraded_rescan_interval),
                        WatchLimitFix(0));
      }
    }
    // Otherwise the folder vanished; its parent's events cover that.
    return;
  }
  watches_[*wd] = WatchTarget{run.run_id, role, rel};
  watches_of_run_[run.run_id].insert(*wd);
  retired_.erase(*wd);
}

void LiveIngester::WatchRunFolders(RunState& run) {
  ScopedFd root = OpenFolderPath(run.paths.root);
  if (root.valid()) {
    AddWatch(run, Role::kRunFolder, run.paths.metrics.filename().string(), root.get());
  }
  ScopedFd wd = OpenFolderPath(run.paths.wd);
  if (wd.valid()) AddWatch(run, Role::kWd, "", wd.get());
}

// ---------------------------------------------------------------------------
// Events → pending items.

void LiveIngester::ScheduleLocked(const std::string& run_id, Work work, const std::string& rel,
                                  absl::Duration delay, std::string reason) {
  if (!runs_.contains(run_id)) return;
  // A file keeps moving its time on while it changes, up to max_delay
  // after its first change; other work only ever moves earlier.
  const SettleDelays delays{delay, work == Work::kPath ? options_.max_delay : delay};
  Reason& r = pending_.Add(WorkKey{run_id, work, rel}, delays);
  if (!reason.empty()) r = std::move(reason);
}

void LiveIngester::RescanAllLocked(const std::string& reason) {
  if (runs_.empty()) return;
  deps_.log->warn("{}; rescanning the outputs/, logs/ and metrics of {} running run(s)", reason,
                  runs_.size());
  for (const auto& [run_id, run] : runs_) {
    ScheduleLocked(run_id, Work::kRescan, "", absl::ZeroDuration(), reason);
  }
}

void LiveIngester::HandleEvents(const std::vector<WatchEvent>& events) {
  absl::MutexLock lock(&mu_);
  for (const WatchEvent& event : events) HandleEventLocked(event);
}

void LiveIngester::HandleEventLocked(const WatchEvent& event) {
  using Kind = WatchEvent::Kind;
  if (event.kind == Kind::kOverflow) {
    ++overflows_;
    return RescanAllLocked(event.reason.empty() ? kOverflowReason
                                                : event.reason);
  }
  if (event.kind == Kind::kWatchEnded) {
    retired_.erase(event.watch);
    auto it = watches_.find(event.watch);
    if (it == watches_.end()) return;
    if (auto of = watches_of_run_.find(it->second.run_id); of != watches_of_run_.end()) {
      of->second.erase(event.watch);
    }
    watches_.erase(it);
    return;
  }
  if (retired_.contains(event.watch)) return;  // late events of a run let go
  auto it = watches_.find(event.watch);
  if (it == watches_.end()) {
    ++unknown_watch_events_;
    return RescanAllLocked(
        absl::StrCat("an inotify event arrived for watch ", event.watch, ", which is unknown"));
  }
  const WatchTarget& target = it->second;
  switch (target.role) {
    case Role::kRunFolder:
      if (event.kind == Kind::kEntry && event.name == target.rel) {
        ScheduleLocked(target.run_id, Work::kMetrics, "", options_.metrics_delay);
      }
      return;
    case Role::kWd:
      if (event.kind == Kind::kEntry && (event.name == kTrees[0] || event.name == kTrees[1])) {
        ScheduleLocked(target.run_id, Work::kPath, event.name, absl::ZeroDuration());
      }
      return;
    case Role::kTree:
      if (event.kind == Kind::kSelfGone) {
        ScheduleLocked(target.run_id, Work::kPath, target.rel, absl::ZeroDuration());
      } else {
        // A new folder is watched at once, so what is created in it next
        // produces events; a file waits until it settles.
        ScheduleLocked(target.run_id, Work::kPath, absl::StrCat(target.rel, "/", event.name),
                       event.is_dir ? absl::ZeroDuration() : options_.settle);
      }
      return;
  }
}

// ---------------------------------------------------------------------------
// Pending items → the stores.

absl::Time LiveIngester::RunDue() {
  std::vector<std::pair<std::shared_ptr<RunState>, std::vector<Item>>> batches;
  {
    absl::MutexLock lock(&mu_);
    absl::flat_hash_map<std::string, size_t> batch_of_run;
    for (Item& item : pending_.TakeDue()) {
      auto run = runs_.find(item.first.run_id);
      if (run == runs_.end()) continue;
      auto [slot, added] = batch_of_run.try_emplace(item.first.run_id, batches.size());
      if (added) batches.emplace_back(run->second, std::vector<Item>());
      batches[slot->second].second.push_back(std::move(item));
    }
  }
  for (auto& [run, items] : batches) Process(*run, items);
  absl::MutexLock lock(&mu_);
  return pending_.NextDue();
}

void LiveIngester::Process(RunState& run, const std::vector<Item>& items) {
  absl::MutexLock lock(&run.mu);
  if (run.done) return;
  if (absl::Status s = Seed(run); !s.ok()) {
    deps_.log->warn("run {}: live ingestion: {}", run.run_id, s.ToString());
    return;
  }
  const Reason* rescan = nullptr;
  bool metrics = false;
  for (const auto& [key, reason] : items) {
    if (key.work == Work::kRescan) rescan = &reason;
    if (key.work == Work::kRescan || key.work == Work::kMetrics) metrics = true;
  }
  ArtifactSync::Hooks hooks;
  hooks.on_folder = [&](const std::string& rel, int dir_fd) {
    AddWatch(run, Role::kTree, rel, dir_fd);
  };
  int64_t changed_found = 0;
  hooks.on_changed_file = [&](const std::string& rel) {
    ++changed_found;
    absl::MutexLock table(&mu_);
    ScheduleLocked(run.run_id, Work::kPath, rel, options_.settle);
  };
  const int64_t read_before = run.sync.files_read();
  ArtifactSync::Changes changes;
  absl::Status synced;
  if (rescan != nullptr) {
    ++rescans_;
    WatchRunFolders(run);
    for (const char* tree : kTrees) synced.Update(run.sync.Sync(tree, hooks, &changes));
  } else {
    for (const auto& [key, reason] : items) {
      if (key.work == Work::kPath) synced.Update(run.sync.Sync(key.rel, hooks, &changes));
    }
  }
  files_read_ += run.sync.files_read() - read_before;
  if (!synced.ok()) deps_.log->warn("run {}: live ingestion: {}", run.run_id, synced.ToString());
  Apply(run, changes);
  if (metrics) ReadMetrics(run, /*at_end=*/false);
  std::vector<std::string> events =
      rescan != nullptr ? KnownTfEventsFiles(run) : std::vector<std::string>();
  for (const Artifact& a : changes.stored) {
    if (IsTfEventsFile(a.path)) events.push_back(a.path);
  }
  if (!events.empty()) ReadTfEvents(run, events, /*at_end=*/false);
  if (rescan != nullptr && !rescan->empty()) {
    deps_.log->info("run {}: rescanned because {}: {} changed file(s) to store, {} removed",
                    run.run_id, *rescan, changed_found, changes.removed.size());
  }
  if (run.degraded) {
    run.degraded = false;
    absl::MutexLock table(&mu_);
    ScheduleLocked(run.run_id, Work::kRescan, "", options_.degraded_rescan_interval);
  }
}

absl::Status LiveIngester::Seed(RunState& run) {
  run.mu.AssertHeld();
  if (run.seeded) return absl::OkStatus();
  for (const char* tree : kTrees) {
    AMLD_ASSIGN_OR_RETURN(std::vector<Artifact> stored,
                          deps_.store->ListArtifacts(run.run_id, absl::StrCat(tree, "/")));
    run.sync.Seed(stored);
  }
  AMLD_ASSIGN_OR_RETURN(auto sources, deps_.store->GetMetricSources(run.run_id));
  // metrics.jsonl resumes by its own count; each events file by offset.
  int64_t jsonl_values = 0;
  for (const auto& [source, progress] : sources) {
    if (source.empty()) {
      jsonl_values = progress.values;
    } else {
      run.tf_events_resume[source] = progress.end_offset;
    }
  }
  run.metrics = MetricsTail(jsonl_values);
  run.seeded = true;
  return absl::OkStatus();
}

void LiveIngester::Apply(RunState& run, const ArtifactSync::Changes& changes) {
  run.mu.AssertHeld();
  // Only the net effect: a file stored and then removed within one pass
  // (or the reverse) must end as the disk is now.
  std::vector<Artifact> put;
  for (const Artifact& a : changes.stored) {
    if (run.sync.StoredDigest(a.path) == a.digest) put.push_back(a);
  }
  std::vector<std::string> removed;
  for (const std::string& path : changes.removed) {
    if (!run.sync.StoredDigest(path).has_value()) removed.push_back(path);
  }
  if (!removed.empty()) {
    absl::Status s = deps_.store->RemoveArtifacts(run.run_id, removed);
    if (!s.ok()) {
      deps_.log->warn("run {}: cannot record removed files: {}", run.run_id, s.ToString());
      run.unapplied_removals.insert(run.unapplied_removals.end(), removed.begin(), removed.end());
    }
  }
  for (const std::string& path : removed) run.unrecorded.erase(path);
  for (Artifact& a : put) run.unrecorded[a.path] = std::move(a.digest);
  RecordStored(run);
}

absl::Status LiveIngester::SyncStore() {
  absl::MutexLock lock(&sync_mu_);
  ++cas_syncs_;
  last_sync_ = deps_.clock->Now();
  return deps_.cas->SyncPending();
}

void LiveIngester::RecordStored(RunState& run) {
  run.mu.AssertHeld();
  if (run.unrecorded.empty()) return;
  absl::Duration wait;
  {
    absl::MutexLock lock(&sync_mu_);
    wait = last_sync_ + options_.durable_interval - deps_.clock->Now();
  }
  if (wait > absl::ZeroDuration()) {
    absl::MutexLock table(&mu_);
    ScheduleLocked(run.run_id, Work::kFlush, "", wait);
    return;
  }
  if (absl::Status s = SyncStore(); !s.ok()) {
    // The sync removed the objects it covered (their content is unknown):
    // store them again from the run's folder.
    deps_.log->warn("run {}: cannot make stored files durable: {}", run.run_id, s.ToString());
    for (const auto& [path, digest] : run.unrecorded) run.sync.ForgetStamp(path);
    absl::MutexLock table(&mu_);
    ScheduleLocked(run.run_id, Work::kRescan, "", options_.durable_interval,
                   "a CAS sync failed");
    return;
  }
  std::vector<Artifact> put;
  for (auto& [path, digest] : run.unrecorded) {
    // Only the net effect: what the folder holds now.
    if (run.sync.StoredDigest(path) == digest) put.push_back(Artifact{path, digest});
  }
  run.unrecorded.clear();
  if (put.empty()) return;
  // Finish stores the whole set again, so a failure here heals then.
  absl::Status s = deps_.store->PutArtifacts(run.run_id, put);
  if (!s.ok()) deps_.log->warn("run {}: cannot record files: {}", run.run_id, s.ToString());
}

// ---------------------------------------------------------------------------
// The end of a run.

absl::Status LiveIngester::Finish(const std::string& run_id, const RunPaths& paths,
                                  std::vector<std::string>* skipped) {
  std::shared_ptr<RunState> run;
  {
    absl::MutexLock lock(&mu_);
    run = DetachLocked(run_id);
  }
  if (run == nullptr) {
    run = std::make_shared<RunState>(run_id, paths, deps_.cas, options_.racy_window);
    run->done = true;
  }
  absl::MutexLock lock(&run->mu);  // waits for a live pass over this run
  AMLD_RETURN_IF_ERROR(Seed(*run));
  ReadMetrics(*run, /*at_end=*/true);
  const int64_t read_before = run->sync.files_read();
  ArtifactSync::Changes changes;
  for (const char* tree : kTrees) AMLD_RETURN_IF_ERROR(run->sync.Sync(tree, {}, &changes));
  files_read_ += run->sync.files_read() - read_before;
  ReadTfEvents(*run, KnownTfEventsFiles(*run), /*at_end=*/true);
  if (skipped != nullptr) {
    skipped->insert(skipped->end(), changes.skipped.begin(), changes.skipped.end());
  }
  std::vector<Artifact> artifacts = run->sync.Current();
  // The run's output, and each process's of a distributed run.
  for (const std::string& log : UserLogs(paths)) {
    absl::StatusOr<ScopedFd> fd = OpenRunFile(paths, log);
    if (!fd.ok()) continue;
    AMLD_ASSIGN_OR_RETURN(amld::storage::Digest digest,
                          deps_.cas->PutFile(absl::StrCat("/proc/self/fd/", fd->get()),
                                             amld::storage::Durability::kDeferred));
    artifacts.push_back(Artifact{log, std::move(digest)});
  }
  // The supervisor's and the daemon's notes on the run (amld-shim.log,
  // amld-metrics.log, slurm.log, amld-processes.json): stored once, at the
  // end, so `aml run files --all` and downloads still have them after the
  // run folder is gone.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(paths.system_logs, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string rel = "system_logs/" + it->path().filename().string();
    absl::StatusOr<ScopedFd> fd = OpenRunFile(paths, rel);  // no links, regular files only
    if (!fd.ok()) continue;
    absl::StatusOr<amld::storage::Digest> digest = deps_.cas->PutFile(
        absl::StrCat("/proc/self/fd/", fd->get()), amld::storage::Durability::kDeferred);
    if (digest.ok()) artifacts.push_back(Artifact{rel, *std::move(digest)});
  }
  // One sync for everything the run stored (live and now), before any of
  // it is recorded.
  AMLD_RETURN_IF_ERROR(SyncStore());
  run->unrecorded.clear();
  std::vector<std::string> removed = std::move(run->unapplied_removals);
  removed.insert(removed.end(), changes.removed.begin(), changes.removed.end());
  std::erase_if(removed,
                [&](const std::string& p) { return run->sync.StoredDigest(p).has_value(); });
  if (!removed.empty()) AMLD_RETURN_IF_ERROR(deps_.store->RemoveArtifacts(run_id, removed));
  AMLD_RETURN_IF_ERROR(deps_.store->PutArtifacts(run_id, artifacts));
  RegisterModels(*run);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The loop.

IngestLoop::IngestLoop(LiveIngester* ingester, Watcher* watcher, base::Clock* clock)
    : ingester_(ingester), watcher_(watcher), clock_(clock) {
  thread_ = std::thread([this] { Loop(); });
}

IngestLoop::~IngestLoop() {
  stop_ = true;
  watcher_->Wake();
  thread_.join();
}

void IngestLoop::Loop() {
  std::vector<WatchEvent> events;
  while (!stop_) {
    const absl::Time next = ingester_->RunDue();
    const absl::Duration timeout = next == absl::InfiniteFuture()
                                       ? absl::InfiniteDuration()
                                       : std::max(absl::ZeroDuration(), next - clock_->Now());
    events.clear();
    watcher_->Wait(timeout, &events);
    if (stop_) return;
    ingester_->HandleEvents(events);
  }
}

}  // namespace amld::daemon
