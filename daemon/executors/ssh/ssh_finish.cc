// The SSH executor: a run's end — the log caught up, outputs pulled,
// exit.json read, the host cleaned up (ssh_executor_impl.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/executors/exit_status.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/ssh/ssh_executor_impl.h"

namespace amld::daemon::ssh {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;

SshExecutor::Outcome SshExecutor::Lost(Follow& f, const absl::Status& why) {
  Note(f, absl::StrCat("giving up on the run: ", why.message()));
  // How the process ended is unknown: an error, not an exit status.
  return absl::UnavailableError(
      absl::StrCat("lost contact with ", remote_.Describe(), ": ", why.message()));
}

SshExecutor::Outcome SshExecutor::Finish(Follow& f, const Probe& probe) {
  if (absl::Status s = CatchUpLog(f); !s.ok()) Note(f, std::string(s.message()));
  absl::Status pulled = probe.wd_present ? Pull(f, /*final=*/true) : absl::OkStatus();
  if (!pulled.ok()) Note(f, absl::StrCat("copying outputs back: ", pulled.message()));
  const std::string where = absl::StrCat(remote_.Describe(), ":", f.remote.remote_dir);
  const std::string shim_log = absl::StrCat("system_logs/", shim::kShimLogName);
  Outcome outcome = SupervisorLost(
      absl::StrCat("amld-shim is gone and left no ", shim::kExitFileName, " on ", where), shim_log);
  if (probe.exit_json.has_value()) {
    outcome = ExitStatusFromFile(*probe.exit_json, absl::StrCat(where, "/", shim::kExitFileName),
                                 shim_log);
    if (outcome.ok()) NameFailedProcess(f.local_dir, &*outcome);  // pulled above
    absl::Status kept =
        amld::base::WriteFileAtomically(f.local_dir / shim::kExitFileName, *probe.exit_json);
    if (!kept.ok()) Note(f, std::string(kept.message()));
  }
  if (pulled.ok()) {
    // The snapshot and outputs are home now; the rest stays as a record.
    absl::StatusOr<CommandResult> removed =
        remote_.Run(CleanUpScript(f.remote), options_.command_timeout);
    if (!removed.ok() || !removed->ok()) {
      Note(f, absl::StrCat("cannot remove the run's wd/ on the host: ",
                           removed.ok() ? removed->Describe() : removed.status().message()));
    }
  } else if (outcome.ok() && Succeeded(*outcome)) {
    outcome->failure = absl::StrCat("the run ended, but its outputs could not be copied back from ",
                                    remote_.Describe(), ": ", pulled.message());
  }
  std::error_code ec;
  fs::remove_all(f.local_dir / kSyncTmpName, ec);
  return outcome;
}

// Appends what the host's std log has beyond the local one (after a
// follower ended or instead of one).
absl::Status SshExecutor::CatchUpLog(Follow& f) {
  const fs::path log = f.local_dir / shim::kStdLogPath;
  absl::Duration backoff = options_.backoff;
  for (int attempt = 1;; ++attempt) {
    ScopedFd fd(::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoStatus(errno, "open", log);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", log);
    AMLD_ASSIGN_OR_RETURN(CommandResult r,
                          remote_.RunToFd(TailCommand(f.remote, st.st_size, /*follow=*/false),
                                          fd.get(), options_.transfer_timeout));
    if (r.ok()) return absl::OkStatus();
    if (!SshRemote::IsSshConnectionFailure(r) || attempt >= options_.attempts) {
      return absl::UnavailableError(
          absl::StrCat("copying the log from ", remote_.Describe(), ": ", r.Describe()));
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
}

absl::Status SshExecutor::Pull(Follow& f, bool final) {
  const fs::path tmp = f.local_dir / kSyncTmpName;
  std::error_code ec;
  fs::create_directories(tmp, ec);
  // Their rsync writes its temp files there (system mode).
  if (const std::optional<RunAs>& as = options_.run_as) {
    AMLD_RETURN_IF_ERROR(GiveTreeTo(tmp, as->uid, as->gid));
  }
  const std::string rd = f.remote.remote_dir;
  // outputs/ and logs/: mirrored (a file the script removed goes), files
  // replaced whole by rename; temp files kept out of the watched folders.
  // The last copy compares checksums: an mtime can repeat within a second.
  // uploads/ (the SDK's upload_file to other names) in the same call, so a
  // file is here before the metrics line that names it (the call below).
  std::vector<std::string> mirror = {"-rltR", "--safe-links", "--delete", "--ignore-missing-args",
                                     "-T", tmp.string()};
  if (final) mirror.push_back("--checksum");
  mirror.insert(mirror.end(),
                {remote_.RsyncPath(rd + "/./wd/outputs"), remote_.RsyncPath(rd + "/./wd/logs"),
                 remote_.RsyncPath(rd + "/./uploads"), f.local_dir.string() + "/"});
  // Append-only files grow in place, so a reader following them (metrics
  // ingestion) keeps its offset.
  std::vector<std::string> append = {
      "-rltR", "--append-verify", remote_.RsyncPath(rd + "/./metrics.jsonl"),
      remote_.RsyncPath(absl::StrCat(rd, "/./system_logs/", shim::kShimLogName)),
      f.local_dir.string() + "/"};
  std::vector<const std::vector<std::string>*> calls = {&mirror, &append};
  // A distributed run's rank logs (append-only, as above) and amld-launch's
  // records of its processes (rewritten whole). Rank 0's is std_log.txt,
  // which the tail above brings. A run is distributed when Launch made its
  // rank logs here (CreateRankLogs); one process pays for no more calls.
  std::vector<std::string> ranks = {"-rlt", "--append-verify", "--include=/user_logs/",
                                    absl::StrCat("--exclude=/", launch::RankLogPath(0)),
                                    "--include=/user_logs/std_log_process_*.txt", "--exclude=*",
                                    remote_.RsyncPath(rd + "/"), f.local_dir.string() + "/"};
  std::vector<std::string> records = {
      "-rlt", "--include=/system_logs/",
      absl::StrCat("--include=/", launch::kProcessListPath),
      absl::StrCat("--include=/", launch::kFailurePath), "--exclude=*",
      remote_.RsyncPath(rd + "/"), f.local_dir.string() + "/"};
  if (fs::exists(f.local_dir / launch::RankLogPath(0), ec)) {
    calls.insert(calls.end(), {&ranks, &records});
  }
  for (const std::vector<std::string>* args : calls) {
    AMLD_ASSIGN_OR_RETURN(CommandResult r, remote_.Rsync(*args, options_.transfer_timeout));
    // 24: files vanished while copying (the script is still writing).
    if (!r.ok() && !(r.signal == 0 && r.exit_code == 24)) {
      return absl::UnavailableError(
          absl::StrCat("rsync from ", remote_.Describe(), ": ", r.Describe()));
    }
  }
  return absl::OkStatus();
}

void SshExecutor::Note(const Follow& f, const std::string& message) const {
  const fs::path path = f.local_dir / "system_logs" / kExecutorLogName;
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return;
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone()),
                   " ssh-executor: ", message, "\n");
  (void)amld::base::WriteAll(fd.get(), line, path);
}

}  // namespace amld::daemon::ssh
