#include "daemon/executors/ssh/ssh_executor.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/shell_quote.h"
#include "base/status_macros.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/launch_spec.h"
#include "daemon/executors/run_as.h"
#include "daemon/executors/ssh/ssh_executor_impl.h"
#include "storage/digest.h"

namespace amld::daemon {
namespace ssh {

namespace fs = std::filesystem;
using base::ScopedFd;
using base::ShellQuote;

SshExecutor::~SshExecutor() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, f] : follows_) {
      f->stop = true;
      uint64_t one = 1;
      (void)!::write(f->wake.get(), &one, sizeof one);
    }
    for (auto& [id, thread] : threads_) threads.push_back(std::move(thread));
    threads_.clear();
    finished_.clear();
  }
  // The threads end their ssh processes and return without calling back.
  for (std::thread& t : threads) t.join();
  remote_.CloseMaster();
}

// ---------------------------------------------------------------------------
// Launch.

absl::Status SshExecutor::PrepareHost() {
  absl::MutexLock lock(&setup_mu_);
  if (host_ready_) return absl::OkStatus();
  if (tool_digests_.empty()) {
    // amld-launch is optional here: without it only distributed runs are
    // refused (Launch).
    for (const char* tool : kRemoteTools) {
      const fs::path path = options_.shim_path.parent_path() / tool;
      if (tool != std::string("amld-shim") && !fs::exists(path)) continue;
      AMLD_ASSIGN_OR_RETURN(amld::storage::Digest digest, amld::storage::DigestOfFile(path));
      tool_digests_[tool] = digest.hash;
    }
  }
  const std::string python_folder =
      options_.run_python.empty() ? "" : RunPythonFolderName(options_.run_python);
  AMLD_ASSIGN_OR_RETURN(CommandResult r,
                        remote_.Run(PrepareHostScript(options_.workdir, python_folder),
                                    options_.command_timeout));
  if (!r.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot prepare the work folder ",
                     options_.workdir.empty() ? kDefaultWorkdir : options_.workdir, " on ",
                     remote_.Describe(), ": ", r.Describe()));
  }
  AMLD_ASSIGN_OR_RETURN(PreparedHost host, ParsePrepareHostAnswer(r.out, remote_.Describe()));
  for (const auto& [tool, digest] : tool_digests_) {
    auto installed = host.installed.find(tool);
    if (installed == host.installed.end() || installed->second != digest) {
      AMLD_RETURN_IF_ERROR(InstallTool(host.remote_workdir, tool, digest));
    }
  }
  if (!python_folder.empty()) {
    if (host.installed[kRemotePythonKey] != python_folder) {
      AMLD_RETURN_IF_ERROR(InstallRunPython(host.remote_workdir));
    }
    remote_python_dir_ =
        absl::StrCat(host.remote_workdir, "/", kRemotePythonParent, "/", python_folder);
  }
  remote_workdir_ = host.remote_workdir;
  host_ready_ = true;
  return absl::OkStatus();
}

absl::Status SshExecutor::InstallTool(const std::string& remote_workdir, const std::string& tool,
                                      const std::string& digest) {
  uint32_t bits;
  {
    absl::MutexLock lock(&mu_);
    bits = absl::Uniform<uint32_t>(random_);
  }
  const std::string dir = absl::StrCat(remote_workdir, "/", kRemoteToolsDir);
  const std::string tmp = absl::StrCat(dir, "/", tool, ".tmp-", bits);
  const fs::path local = options_.shim_path.parent_path() / tool;
  AMLD_ASSIGN_OR_RETURN(CommandResult copied,
                        remote_.Rsync({"-p", local.string(), remote_.RsyncPath(tmp)},
                                      options_.transfer_timeout));
  if (!copied.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot copy ", tool, " to ", remote_.Describe(), ": ", copied.Describe()));
  }
  AMLD_ASSIGN_OR_RETURN(CommandResult moved, remote_.Run(InstallToolScript(tmp, dir, tool, digest),
                                                         options_.command_timeout));
  if (!moved.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot install ", tool, " on ", remote_.Describe(), ": ", moved.Describe()));
  }
  return absl::OkStatus();
}

absl::Status SshExecutor::InstallRunPython(const std::string& remote_workdir) {
  uint32_t bits;
  {
    absl::MutexLock lock(&mu_);
    bits = absl::Uniform<uint32_t>(random_);
  }
  const std::string dir = absl::StrCat(remote_workdir, "/", kRemotePythonParent, "/",
                                       RunPythonFolderName(options_.run_python));
  const std::string tmp = absl::StrCat(dir, ".tmp-", bits);
  // Readable by all: in system mode a host login may serve several users.
  AMLD_ASSIGN_OR_RETURN(
      CommandResult copied,
      remote_.Rsync({"-r", "--chmod=D755,F644", options_.run_python.dir.string() + "/",
                     remote_.RsyncPath(tmp + "/")},
                    options_.transfer_timeout));
  if (!copied.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot copy amld's Python for runs to ", remote_.Describe(), ": ", copied.Describe()));
  }
  AMLD_ASSIGN_OR_RETURN(CommandResult moved,
                        remote_.Run(InstallFolderScript(tmp, dir), options_.command_timeout));
  if (!moved.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot install amld's Python for runs on ", remote_.Describe(), ": ", moved.Describe()));
  }
  return absl::OkStatus();
}

absl::StatusOr<RemoteRun> SshExecutor::StartShim(const std::string& remote_dir) {
  AMLD_ASSIGN_OR_RETURN(
      CommandResult r,
      remote_.Run(absl::StrCat("exec /bin/sh ", ShellQuote(remote_dir), "/", kLaunchScriptName),
                  options_.command_timeout));
  RemoteRun run;
  run.host = remote_.endpoint().host;
  run.port = remote_.endpoint().port;
  run.user = remote_.endpoint().user;
  run.remote_dir = remote_dir;
  return ParseLaunchAnswer(r, std::move(run), remote_.Describe());
}

absl::Status SshExecutor::NotFollowed(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  if (follows_.contains(run_id)) {
    // A second follow would be out of Cancel's and the destructor's reach,
    // and a second launch would rsync into the running run's folder.
    return absl::AlreadyExistsError(absl::StrCat("run ", run_id, " is already running here"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SshExecutor::Launch(const LaunchSpec& spec) {
  AMLD_RETURN_IF_ERROR(ValidateLaunchSpec(spec));
  const std::optional<RunAs>& as = options_.run_as;
  if (spec.run_as.has_value() != as.has_value() || (as && spec.run_as->uid != as->uid)) {
    return absl::InternalError(absl::StrCat(
        "run ", spec.run_id, " runs as ", spec.run_as ? spec.run_as->user : "the daemon",
        ", but this SSH executor connects as ", as ? as->user : "the daemon"));
  }
  if (as) {
    // Their ssh reads the key, their rsync the tools it installs on the
    // host: a clear refusal rather than ssh's or rsync's own.
    if (!remote_.endpoint().identity_file.empty()) {
      AMLD_RETURN_IF_ERROR(CheckAccountMay(*as, remote_.endpoint().identity_file, R_OK));
    }
    AMLD_RETURN_IF_ERROR(CheckAccountMay(*as, options_.shim_path, R_OK));
  }
  AMLD_RETURN_IF_ERROR(NotFollowed(spec.run_id));
  AMLD_RETURN_IF_ERROR(PrepareHost());
  std::string remote_dir, tools, python_dir;
  {
    absl::MutexLock lock(&setup_mu_);
    if (!spec.processes.kind.empty() && !tool_digests_.contains(launch::kLaunchBinaryName)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot start the run's ", spec.processes.count, " processes on ", remote_.Describe(),
          ": ", (options_.shim_path.parent_path() / launch::kLaunchBinaryName).string(),
          " does not exist (install it beside amld-shim)"));
    }
    remote_dir = absl::StrCat(remote_workdir_, "/", spec.run_id);
    tools = absl::StrCat(remote_workdir_, "/", kRemoteToolsDir);
    python_dir = remote_python_dir_;
  }
  // Here, before the run folder goes over: the host's amld-launch links
  // its own rank 0 (the copy has no hard links), the pulls fill the others.
  AMLD_RETURN_IF_ERROR(CreateRankLogs(spec.run_dir, spec.processes));
  AMLD_RETURN_IF_ERROR(amld::base::WriteFileAtomically(
      spec.run_dir / kLaunchScriptName, LaunchScript(spec, remote_dir, tools, python_dir)));
  // Their rsync reads the folder, and pulls into it later.
  if (as) AMLD_RETURN_IF_ERROR(GiveTreeTo(spec.run_dir, as->uid, as->gid));
  AMLD_ASSIGN_OR_RETURN(
      CommandResult pushed,
      remote_.Rsync({"-rlpt", "--delete", absl::StrCat(spec.run_dir.string(), "/"),
                     remote_.RsyncPath(remote_dir + "/")},
                    options_.transfer_timeout));
  if (!pushed.ok()) {
    absl::MutexLock lock(&setup_mu_);
    host_ready_ = false;  // the work folder may be gone: the next launch makes it again
    return absl::FailedPreconditionError(absl::StrCat("cannot copy the run folder to ",
                                                      remote_.Describe(), ":", remote_dir, ": ",
                                                      pushed.Describe()));
  }
  absl::StatusOr<RemoteRun> started = StartShim(remote_dir);
  if (!started.ok()) {
    absl::MutexLock lock(&setup_mu_);
    host_ready_ = false;  // the next launch checks the shim again
    return started.status();
  }
  std::string handle = FormatHandle(*started);
  StartFollowing(std::move(*started), spec.run_id, spec.run_dir, /*reattached=*/false);
  return handle;
}

absl::Status SshExecutor::Reattach(const std::string& run_id, const fs::path& run_dir,
                                   const std::string& handle) {
  AMLD_RETURN_IF_ERROR(NotFollowed(run_id));
  AMLD_ASSIGN_OR_RETURN(RemoteRun remote, ParseHandle(run_id, handle));
  if (remote.host != remote_.endpoint().host || remote.port != remote_.endpoint().port) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " was started on ", remote.host, ":", remote.port,
                     ", but its target is ", remote_.Describe(), " now"));
  }
  // The host is asked on the run's thread, so a slow or unreachable host
  // does not hold up the daemon's start.
  StartFollowing(std::move(remote), run_id, run_dir, /*reattached=*/true);
  return absl::OkStatus();
}

absl::StatusOr<std::string> SshExecutor::FindUnrecorded(const std::string& run_id,
                                                        const fs::path& run_dir,
                                                        const std::optional<RunAs>&) {
  AMLD_RETURN_IF_ERROR(NotFollowed(run_id));
  AMLD_RETURN_IF_ERROR(PrepareHost());
  std::string remote_dir;
  {
    absl::MutexLock lock(&setup_mu_);
    remote_dir = absl::StrCat(remote_workdir_, "/", run_id);
  }
  AMLD_ASSIGN_OR_RETURN(CommandResult r,
                        remote_.Run(FindLaunchScript(remote_dir), options_.command_timeout));
  RemoteRun run;
  run.host = remote_.endpoint().host;
  run.port = remote_.endpoint().port;
  run.user = remote_.endpoint().user;
  run.remote_dir = remote_dir;
  AMLD_ASSIGN_OR_RETURN(RemoteRun found, ParseFindLaunchAnswer(r, std::move(run), remote_.Describe()));
  return FormatHandle(found);
}

absl::Status SshExecutor::Cancel(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  auto it = follows_.find(run_id);
  if (it == follows_.end()) {
    return absl::NotFoundError(
        absl::StrCat("run ", run_id, " is not running on ", remote_.Describe()));
  }
  it->second->cancel = true;
  uint64_t one = 1;
  (void)!::write(it->second->wake.get(), &one, sizeof one);
  return absl::OkStatus();
}

void SshExecutor::StartFollowing(RemoteRun remote, const std::string& run_id,
                                 const fs::path& local_dir, bool reattached) {
  JoinFinishedThreads();
  auto f = std::make_shared<Follow>();
  f->run_id = run_id;
  f->local_dir = local_dir;
  f->remote = std::move(remote);
  f->wake = ScopedFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  absl::MutexLock lock(&mu_);
  follows_[run_id] = f;
  const uint64_t id = next_thread_id_++;
  // Under mu_: the thread cannot report itself finished before it is in
  // threads_.
  threads_.emplace(id, std::thread([this, f, reattached, id] { FollowThread(f, reattached, id); }));
}

void SshExecutor::JoinFinishedThreads() {
  std::vector<std::thread> done;
  {
    absl::MutexLock lock(&mu_);
    for (uint64_t id : finished_) {
      auto node = threads_.extract(id);
      if (!node.empty()) done.push_back(std::move(node.mapped()));
    }
    finished_.clear();
  }
  for (std::thread& t : done) t.join();
}

}  // namespace ssh

absl::StatusOr<std::unique_ptr<Executor>> NewSshExecutor(const SshExecutorOptions& options) {
  if (!options.shim_path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("amld-shim path ", options.shim_path.string(), " is not absolute"));
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(options.shim_path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "amld-shim not found at ", options.shim_path.string(), "; install it beside amld"));
  }
  SshRemoteOptions remote;
  remote.endpoint = options.endpoint;
  remote.state_dir = options.state_dir;
  remote.connect_timeout = options.connect_timeout;
  remote.attempts = options.attempts;
  remote.backoff = options.backoff;
  remote.runner = options.runner.get();
  remote.run_as = options.run_as;
  AMLD_ASSIGN_OR_RETURN(SshRemote ssh, SshRemote::Create(std::move(remote)));
  return std::unique_ptr<Executor>(new ssh::SshExecutor(options, std::move(ssh)));
}

}  // namespace amld::daemon
