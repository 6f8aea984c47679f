#include "client/commands/source_snapshot.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <system_error>

extern char** environ;

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/commands/output.h"
#include "client/git_info.h"
#include "client/submitter_env.h"
#include "base/status_macros.h"
#include "client/grpc_status.h"
#include "client/watched_snapshot.h"
#include "storage/snapshot/stat_cache.h"

namespace amld::client::commands {
namespace {

// Uploads smaller than this finish before a bar would be worth drawing.
constexpr int64_t kProgressBarMinBytes = 8 << 20;

// A one-line progress bar on stderr, redrawn at most ten times a second.
class ProgressBar {
 public:
  void Update(const UploadProgress& p) {
    if (p.bytes_to_send < kProgressBarMinBytes) return;
    const absl::Time now = absl::Now();
    const bool done = p.blobs_done == p.blobs_to_send;
    if (!done && now - last_draw_ < absl::Milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const int filled =
        static_cast<int>(kWidth * p.bytes_done / std::max<int64_t>(1, p.bytes_to_send));
    std::cerr << absl::StrFormat("\ruploading [%s%s] %s / %s, %d of %d blobs ",
                                 std::string(filled, '#'), std::string(kWidth - filled, ' '),
                                 HumanBytes(p.bytes_done), HumanBytes(p.bytes_to_send),
                                 p.blobs_done, p.blobs_to_send)
              << std::flush;
    drawn_ = true;
  }
  ~ProgressBar() {
    if (drawn_) std::cerr << std::endl;
  }

 private:
  absl::Time last_draw_ = absl::InfinitePast();
  bool drawn_ = false;
};

}  // namespace

namespace {

// A watched folder's tree, unless it is over the client's own limits (then
// the walk below fails listing the largest files).
bool WithinLimits(const amld::v1::GetWatchedSnapshotResponse& w, const SnapshotLimits& limits) {
  return (limits.max_files <= 0 || w.file_count() <= limits.max_files) &&
         (limits.max_bytes <= 0 || w.total_bytes() <= limits.max_bytes);
}

absl::Status WalkWithStatCache(const std::filesystem::path& dir, const SnapshotLimits& limits,
                               SourceSnapshot* source) {
  source->stat_cache_file =
      amld::storage::StatCacheFileFor(amld::storage::DefaultStatCacheDir(), dir);
  const absl::Time load_started = absl::Now();
  source->stat_cache = std::make_shared<amld::storage::StatCache>(
      amld::storage::StatCache::Load(source->stat_cache_file));
  source->cache_load_time = absl::Now() - load_started;
  if (!source->stat_cache->load_problem().empty()) {
    std::cerr << "aml: note: " << source->stat_cache->load_problem() << "; hashing every file"
              << std::endl;
  }
  amld::storage::BuildOptions options;
  options.cache = source->stat_cache.get();
  options.max_total_bytes = limits.max_bytes;
  options.max_files = limits.max_files;
  source->walk_started = absl::Now();
  auto snapshot = amld::storage::BuildSnapshot(dir, options);
  source->walk_time = absl::Now() - source->walk_started;
  if (!snapshot.ok()) return snapshot.status();
  source->snapshot = *std::move(snapshot);
  source->files_hashed = source->stat_cache->misses();
  return absl::OkStatus();
}

// A local try's outputs/ or logs/ stays out of the snapshot by default
// (storage::CheckLeftOut); say so, whether the walk was ours or the
// daemon's, since a person may have meant to send it.
void NoteRunFoldersLeftOut(const std::filesystem::path& dir) {
  std::unique_ptr<amld::storage::IgnoreRules> rules;
  for (std::string_view name : {amld::storage::kRunOutputsFolder, amld::storage::kRunLogsFolder}) {
    struct stat st;
    if (::lstat((dir / name).c_str(), &st) != 0) continue;
    if (rules == nullptr) rules = std::make_unique<amld::storage::IgnoreRules>(dir);
    amld::storage::IgnoreDecision d =
        amld::storage::CheckLeftOut(rules.get(), name, name, S_ISDIR(st.st_mode));
    if (d.source != amld::storage::kDefaultRuleSource) continue;
    std::cerr << "aml: note: " << d.pattern.substr(1) << " "
              << amld::storage::WhyLeftOut(d) << std::endl;
  }
}

}  // namespace

absl::StatusOr<SourceSnapshot> HashSourceFolder(const GlobalOptions& global,
                                                const std::filesystem::path& source_dir,
                                                const SnapshotLimits& limits) {
  std::error_code ec;
  if (!std::filesystem::is_directory(source_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("the source folder ", source_dir.string(),
                                            " does not exist or is not a folder"));
  }
  if (!std::filesystem::exists(global.SocketPath(), ec)) {
    return DaemonNotRunningError(global.SocketPath());
  }
  // The daemon matches watched roots by their resolved path.
  std::filesystem::path dir = std::filesystem::canonical(source_dir, ec);
  if (ec) dir = std::filesystem::absolute(source_dir, ec);
  auto pending_git =
      std::async(std::launch::async, [&source_dir] { return ReadGitInfo(source_dir); });
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return conn.status();
  const absl::Time ask_started = absl::Now();
  auto watched = AskWatchedSnapshot(*conn, dir);
  const absl::Duration ask_time = absl::Now() - ask_started;
  if (!watched.ok()) return watched.status();
  SourceSnapshot source;
  source.conn = *std::move(conn);
  source.ask_watched_time = ask_time;
  if (watched->snapshot && WithinLimits(*watched->snapshot, limits)) {
    source.snapshot.root = amld::storage::FromProto(watched->snapshot->snapshot_root());
    source.snapshot.total_file_bytes = watched->snapshot->total_bytes();
    source.watched = std::move(watched->snapshot);
  } else {
    if (!watched->fallback_reason.empty()) {
      std::cerr << "aml: note: amld's watch of " << dir.string() << " cannot serve this snapshot ("
                << watched->fallback_reason << "); walking the folder here" << std::endl;
    }
    const absl::Time walk_started = absl::Now();
    AMLD_ASSIGN_OR_RETURN(LocalIngestAnswer ingested,
                          AskLocalIngest(source.conn, dir, limits.max_bytes, limits.max_files));
    if (ingested.snapshot) {
      source.walk_time = absl::Now() - walk_started;
      source.snapshot.root = amld::storage::FromProto(ingested.snapshot->snapshot_root());
      source.snapshot.total_file_bytes = ingested.snapshot->total_bytes();
      source.files_hashed = ingested.snapshot->files_read();
      source.ingested = std::move(ingested.snapshot);
    } else {
      source.ingest_fallback_reason = std::move(ingested.fallback_reason);
      absl::Status walked = WalkWithStatCache(dir, limits, &source);
      if (!walked.ok()) return walked;
    }
  }
  NoteRunFoldersLeftOut(dir);
  auto git = pending_git.get();
  if (!git.ok()) {
    std::cerr << "aml: warning: " << git.status().message() << "; the run gets no git info"
              << std::endl;
  } else if (git->has_value()) {
    source.git = **git;
  }
  return source;
}

namespace {

// Changes whenever the daemon restarts, so that what one daemon held is
// never assumed of another (or of a store that was reset meanwhile).
std::string DaemonIdentity(const amld::v1::DaemonInfo& info) {
  return absl::StrCat(info.data_dir(), "\n", info.socket_path(), "\n", info.pid(), "\n",
                      info.start_time().seconds(), ".", info.start_time().nanos());
}

}  // namespace

absl::StatusOr<UploadStats> UploadSourceSnapshot(const SourceSnapshot& source, bool show_progress,
                                                 bool trust_earlier_upload) {
  ProgressBar bar;
  UploaderOptions options;
  options.socket_path = source.conn.socket_path;
  if (source.conn.info.max_batch_bytes() > 0) {
    options.max_batch_bytes = source.conn.info.max_batch_bytes();
  }
  if (show_progress) options.on_progress = [&bar](const UploadProgress& u) { bar.Update(u); };
  if (source.watched || source.ingested) {
    // The daemon stored the tree itself: nothing to send.
    UploadStats stats;
    stats.files_total =
        source.watched ? source.watched->file_count() : source.ingested->file_count();
    stats.bytes_total = source.snapshot.total_file_bytes;
    return stats;
  }
  const std::string daemon = DaemonIdentity(source.conn.info);
  source.trusted_earlier_upload = false;
  if (trust_earlier_upload && source.stat_cache != nullptr) {
    options.present_dirs = source.stat_cache->UploadedTree(daemon);
    source.trusted_earlier_upload = options.present_dirs != nullptr;
  }
  SnapshotUploader uploader(source.conn.channel, options);
  const absl::Time upload_started = absl::Now();
  auto stats = uploader.Upload(source.snapshot);
  source.upload_time = absl::Now() - upload_started;
  if (stats.ok() && source.stat_cache != nullptr) {
    absl::flat_hash_set<amld::storage::Digest> dirs;
    for (const auto& [digest, bytes] : source.snapshot.directories) dirs.insert(digest);
    source.stat_cache->SetUploadedTree(daemon, std::move(dirs));
    const absl::Time save_started = absl::Now();
    absl::Status saved = source.stat_cache->Save(source.stat_cache_file, source.walk_started);
    source.cache_save_time = absl::Now() - save_started;
    if (!saved.ok()) {
      std::cerr << "aml: warning: cannot save the stat cache (" << saved.message()
                << "); the next submit hashes every file again" << std::endl;
    }
  }
  return stats;
}

nlohmann::json UploadStatsJson(const UploadStats& s) {
  return {{"files_total", s.files_total},
          {"files_uploaded", s.files_uploaded},
          {"directories_total", s.directories_total},
          {"directories_uploaded", s.directories_uploaded},
          {"bytes_uploaded", s.bytes_uploaded},
          {"bytes_total", s.bytes_total}};
}

nlohmann::json SnapshotSourceJson(const SourceSnapshot& source) {
  const nlohmann::json seconds = {{"ask_watched", absl::ToDoubleSeconds(source.ask_watched_time)},
                                  {"cache_load", absl::ToDoubleSeconds(source.cache_load_time)},
                                  {"walk", absl::ToDoubleSeconds(source.walk_time)},
                                  {"upload", absl::ToDoubleSeconds(source.upload_time)},
                                  {"cache_save", absl::ToDoubleSeconds(source.cache_save_time)},
                                  {"submit_run", absl::ToDoubleSeconds(source.submit_time)}};
  if (source.watched) {
    return {{"kind", "watched_root"},
            {"seconds", seconds},
            {"files_hashed", 0},
            {"stat_cache_hits", 0},
            {"changes_applied", source.watched->changes_applied()},
            {"rescanned", source.watched->rescanned()}};
  }
  if (source.ingested) {
    return {{"kind", "daemon_read"},
            {"seconds", seconds},
            {"files_hashed", source.files_hashed},
            {"stat_cache_hits", source.ingested->file_count() - source.files_hashed},
            {"read_as_caller", source.ingested->read_as_caller()},
            {"watching", source.ingested->watching()}};
  }
  nlohmann::json walk = {
      {"kind", "walk"},
      {"files_hashed", source.files_hashed},
      {"stat_cache_hits", source.stat_cache != nullptr ? source.stat_cache->hits() : 0},
      {"trusted_earlier_upload", source.trusted_earlier_upload},
      {"seconds", seconds}};
  if (!source.ingest_fallback_reason.empty()) {
    walk["local_ingest_fallback"] = source.ingest_fallback_reason;
  }
  return walk;
}

void AddSubmitterEnvOptions(CLI::App& cmd, SubmitterEnvOptions& o) {
  cmd.add_flag("--daemon-env", o.daemon_env,
               "run with the daemon's environment instead of yours (by default a local run gets "
               "your environment and the python3 on your PATH, less names that look like secrets)")
      ->envname("AMLD_NO_SUBMITTER_ENV");
  cmd.add_option("--pass-env", o.pass_env,
                 "send this variable although its name looks like a secret (repeatable)")
      ->allow_extra_args(false);
}

void ApplySubmitterEnv(const SubmitterEnvOptions& o, amld::v1::RunConfig* config) {
  if (o.daemon_env) return;
  // Relative folders in PATH-like lists mean the caller's working folder.
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::current_path(ec);
  if (ec) cwd.clear();
  *config->mutable_submitter_environment() =
      CaptureSubmitterEnvironment(environ, o.pass_env, cwd);
}

}  // namespace amld::client::commands
