// LiveIngester's metrics half (the class: live_ingester.h): a run's
// metrics.jsonl and the run records in it (tags, uploads, model
// registrations), and TensorBoard event files under logs/, into the state
// store; problems go to system_logs/amld-metrics.log.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/relative_path.h"
#include "base/status_macros.h"
#include "daemon/ingest/live_ingester.h"
#include "daemon/ingest/live_ingester_run.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

using amld::base::ScopedFd;
using amld::storage::Artifact;
using live_ingester_internal::OpenFolderPath;

// In system_logs/, beside the supervisor's amld-shim.log.
constexpr char kMetricsLogName[] = "amld-metrics.log";

}  // namespace

// ---------------------------------------------------------------------------
// Metrics.

void LiveIngester::ReadMetrics(RunState& run, bool at_end) {
  run.mu.AssertHeld();
  ScopedFd root = OpenFolderPath(run.paths.root);
  if (!root.valid()) return;
  const std::string name = run.paths.metrics.filename().string();
  ScopedFd fd(OpenBeneath(root.get(), name, O_RDONLY | O_NONBLOCK));
  std::string refusal;
  struct stat st;
  if (!fd.valid()) {
    if (errno == ELOOP || errno == EXDEV) {
      refusal = " is a symbolic link; amld does not follow links in a run, so it is not read";
    }
  } else if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    refusal = " is not a regular file, so it is not read";
  }
  if (!refusal.empty() && !run.metrics_file_reported) {
    run.metrics_file_reported = true;
    ReportMetricWarnings(run, {absl::StrCat(name, refusal)});
  }
  if (!fd.valid() || !refusal.empty()) return;
  const MetricsTail before = run.metrics;
  absl::StatusOr<MetricsTail::Batch> batch = run.metrics.Read(fd.get(), deps_.clock->Now(), at_end);
  if (!batch.ok()) {
    deps_.log->warn("run {}: cannot read {}: {}", run.run_id, name, batch.status().ToString());
    return;
  }
  if (!batch->metrics.empty()) {
    absl::Status s = deps_.store->AppendMetrics(run.run_id, batch->metrics);
    if (!s.ok()) {
      run.metrics = before;  // read again next time
      deps_.log->error("run {}: cannot store {} metric value(s): {}", run.run_id,
                       batch->metrics.size(), s.ToString());
      return;
    }
    metrics_stored_ += static_cast<int64_t>(batch->metrics.size());
  }
  metric_lines_skipped_ += batch->lines_skipped;
  for (RunRecordLine& record : batch->records) {
    const int64_t line = record.line;
    absl::Status applied = ApplyRecord(run, std::move(record));
    if (!applied.ok()) {
      batch->warnings.push_back(absl::StrCat("metrics.jsonl line ", line, ": ",
                                             applied.message()));
    }
  }
  if (!batch->warnings.empty()) ReportMetricWarnings(run, batch->warnings);
}

std::vector<std::string> LiveIngester::KnownTfEventsFiles(const RunState& run) {
  run.mu.AssertHeld();
  std::vector<std::string> files;
  for (const Artifact& a : run.sync.Current()) {
    if (IsTfEventsFile(a.path)) files.push_back(a.path);
  }
  return files;
}

void LiveIngester::ReadTfEvents(RunState& run, const std::vector<std::string>& files,
                                bool at_end) {
  run.mu.AssertHeld();
  std::set<std::string> unique(files.begin(), files.end());
  std::vector<std::string> warnings;
  for (const std::string& rel : unique) {
    if (!absl::StartsWith(rel, "logs/")) continue;  // outputs/ are results, not logs
    auto it = run.tf_events.find(rel);
    if (it == run.tf_events.end()) {
      auto resume = run.tf_events_resume.find(rel);
      it = run.tf_events
               .try_emplace(rel, resume == run.tf_events_resume.end() ? 0 : resume->second)
               .first;
    }
    // Beneath wd/, no links, a regular file: as every artifact is read.
    ScopedFd wd = OpenFolderPath(run.paths.wd);
    ScopedFd fd(wd.valid() ? OpenBeneath(wd.get(), rel, O_RDONLY | O_NONBLOCK) : -1);
    struct stat st;
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const TfEventsTail before = it->second;
    absl::StatusOr<TfEventsTail::Batch> batch = it->second.Read(fd.get(), at_end);
    if (!batch.ok()) {
      deps_.log->warn("run {}: cannot read {}: {}", run.run_id, rel, batch.status().ToString());
      continue;
    }
    for (const std::string& w : batch->warnings) warnings.push_back(absl::StrCat(rel, " ", w));
    if (batch->metrics.empty()) continue;
    absl::Status s =
        deps_.store->AppendMetrics(run.run_id, batch->metrics, rel, batch->record_ends);
    if (!s.ok()) {
      it->second = before;  // read again next time
      deps_.log->error("run {}: cannot store {} value(s) of {}: {}", run.run_id,
                       batch->metrics.size(), rel, s.ToString());
      continue;
    }
    metrics_stored_ += static_cast<int64_t>(batch->metrics.size());
  }
  if (!warnings.empty()) ReportMetricWarnings(run, warnings);
}

absl::Status LiveIngester::ApplyRecord(RunState& run, RunRecordLine record) {
  run.mu.AssertHeld();
  switch (record.kind) {
    case RunRecordLine::Kind::kLabels:
      return deps_.store->UpdateRunLabels(run.run_id, record.labels).status();
    case RunRecordLine::Kind::kRegisterModel:
      run.model_registrations.push_back(std::move(record));
      return absl::OkStatus();
    case RunRecordLine::Kind::kUpload:
      break;
  }
  // upload: the SDK copied the file to uploads/<name> in the run folder.
  const std::string& name = record.upload_name;
  for (const char* reserved : {"outputs/", "logs/", "user_logs/", "system_logs/"}) {
    if (absl::StartsWith(name, reserved)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upload of \"", name, "\" refused: files under ", reserved,
          " come from the run's own folder (the SDK copies them there)"));
    }
  }
  AMLD_RETURN_IF_ERROR(amld::base::ValidateRelativePath(name, "upload name"));
  // Beneath the run folder, no links, a regular file: as OpenRunFile, for
  // the one folder it does not serve.
  ScopedFd root = OpenFolderPath(run.paths.root);
  ScopedFd fd(root.valid() ? OpenBeneath(root.get(), "uploads/" + name, O_RDONLY | O_NONBLOCK)
                           : -1);
  struct stat st;
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat(
        "upload of \"", name, "\": uploads/", name,
        " in the run folder is missing, a link or not a regular file"));
  }
  AMLD_ASSIGN_OR_RETURN(amld::storage::Digest digest,
                        deps_.cas->PutFile(absl::StrCat("/proc/self/fd/", fd.get()),
                                           amld::storage::Durability::kImmediate));
  ++files_read_;
  return deps_.store->PutArtifacts(run.run_id, {Artifact{name, std::move(digest)}});
}

void LiveIngester::RegisterModels(RunState& run) {
  run.mu.AssertHeld();
  std::vector<std::string> warnings;
  // A model the run registers is its submitter's (access.h: who may read it).
  absl::StatusOr<amld::v1::Run> record_of_run = deps_.store->GetRun(run.run_id);
  for (const RunRecordLine& record : run.model_registrations) {
    amld::v1::Model wanted = record.model;
    if (record_of_run.ok()) wanted.set_registered_by_uid(record_of_run->submitter_uid());
    absl::StatusOr<amld::v1::Model> model = deps_.store->RegisterModelFromRun(
        std::move(wanted), run.run_id, record.model.source_path(),
        absl::StrCat(run.run_id, ":", record.line), deps_.clock->Now());
    if (model.ok()) {
      deps_.log->info("run {}: registered model {} version {}", run.run_id, model->name(),
                      model->version());
    } else {
      warnings.push_back(absl::StrCat("metrics.jsonl line ", record.line, ": register_model(",
                                      record.model.name(), "): ", model.status().message()));
    }
  }
  run.model_registrations.clear();
  if (!warnings.empty()) ReportMetricWarnings(run, warnings);
}

void LiveIngester::ReportMetricWarnings(RunState& run, const std::vector<std::string>& warnings) {
  deps_.log->info("run {}: {}{}", run.run_id, warnings.front(),
                  warnings.size() > 1 ? absl::StrCat(" (and ", warnings.size() - 1,
                                                     " more in system_logs/", kMetricsLogName, ")")
                                      : "");
  ScopedFd root = OpenFolderPath(run.paths.root);
  if (!root.valid()) return;
  ScopedFd dir(OpenBeneath(root.get(), "system_logs", O_PATH | O_DIRECTORY));
  if (!dir.valid()) return;
  ScopedFd out(::openat(dir.get(), kMetricsLogName,
                        O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out.valid()) return;
  // A system-mode daemon (root) writes into a run folder its submitter owns:
  // the file is theirs too, like everything else there.
  struct stat owner;
  if (::geteuid() == 0 && ::fstat(root.get(), &owner) == 0 && owner.st_uid != 0) {
    (void)!::fchown(out.get(), owner.st_uid, owner.st_gid);
  }
  const std::string stamp =
      absl::FormatTime("%Y-%m-%d %H:%M:%E3S ", deps_.clock->Now(), absl::LocalTimeZone());
  std::string text;
  for (const std::string& w : warnings) absl::StrAppend(&text, stamp, w, "\n");
  (void)amld::base::WriteAll(out.get(), text, kMetricsLogName);
}

}  // namespace amld::daemon
