#include "daemon/executors/executor_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace amld::daemon {

namespace v1 = amld::v1;

ExecutorRegistry::ExecutorRegistry(std::unique_ptr<Executor> local, ExecutorFactories factories,
                                   amld::storage::StateStore* store)
    : factories_(std::move(factories)), store_(store), local_(local.get()) {
  absl::MutexLock lock(&mu_);
  owned_.push_back(std::move(local));
  by_target_[amld::storage::kLocalTargetName] = local_;
}

ExecutorRegistry::~ExecutorRegistry() {
  std::vector<std::unique_ptr<Executor>> owned;
  {
    absl::MutexLock lock(&mu_);
    owned.swap(owned_);
    by_target_.clear();
    by_run_.clear();
  }
  // Unlocked: an executor's thread may be inside OnExit, waiting for mu_,
  // while its destructor joins it. The newest first, the local one last.
  while (!owned.empty()) owned.pop_back();
}

void ExecutorRegistry::SetExitCallback(ExitCallback callback) {
  {
    absl::MutexLock lock(&mu_);
    exit_callback_ = std::move(callback);
  }
  local_->SetExitCallback([this](const std::string& run_id, absl::StatusOr<ExitStatus> outcome) {
    OnExit(run_id, std::move(outcome));
  });
}

void ExecutorRegistry::SetProgressCallback(ProgressCallback callback) {
  {
    absl::MutexLock lock(&mu_);
    progress_callback_ = std::move(callback);
  }
  local_->SetProgressCallback([this](const std::string& run_id, const RunProgress& progress) {
    OnProgress(run_id, progress);
  });
}

void ExecutorRegistry::OnExit(const std::string& run_id, absl::StatusOr<ExitStatus> outcome) {
  ExitCallback callback;
  {
    absl::MutexLock lock(&mu_);
    by_run_.erase(run_id);
    callback = exit_callback_;
  }
  if (callback) callback(run_id, std::move(outcome));
}

void ExecutorRegistry::OnProgress(const std::string& run_id, const RunProgress& progress) {
  ProgressCallback callback;
  {
    absl::MutexLock lock(&mu_);
    callback = progress_callback_;
  }
  if (callback) callback(run_id, progress);
}

absl::StatusOr<std::unique_ptr<Executor>> ExecutorRegistry::Make(const v1::ComputeTarget& target) {
  const ExecutorFactory* factory = nullptr;
  const char* kind = "";
  switch (target.kind_case()) {
    case v1::ComputeTarget::kSsh:
      factory = &factories_.ssh;
      kind = "ssh";
      break;
    case v1::ComputeTarget::kSlurm:
      factory = &factories_.slurm;
      kind = "slurm";
      break;
    default:
      return absl::InternalError(
          absl::StrCat("compute target \"", target.name(), "\" has no kind this daemon knows"));
  }
  if (!*factory) {
    return absl::UnimplementedError(absl::StrCat("compute target \"", target.name(), "\" is a ",
                                                 kind, " target, which this daemon cannot run"));
  }
  return (*factory)(target);
}

absl::StatusOr<Executor*> ExecutorRegistry::ExecutorFor(const std::string& target_name,
                                                        const std::optional<RunAs>& account) {
  const std::string name = target_name.empty() ? amld::storage::kLocalTargetName : target_name;
  const bool per_account =
      account.has_value() && factories_.ssh_as && name != amld::storage::kLocalTargetName;
  // "<target>\n<uid>": an account's entry (a target's name has no line break).
  const std::string account_key = per_account ? absl::StrCat(name, "\n", account->uid) : "";
  absl::MutexLock lock(&mu_);
  if (per_account) {
    if (auto it = by_target_.find(account_key); it != by_target_.end()) return it->second;
  }
  Executor* shared = nullptr;
  if (auto it = by_target_.find(name); it != by_target_.end()) shared = it->second;
  std::optional<v1::ComputeTarget> target;
  if (shared == nullptr || per_account) {
    AMLD_ASSIGN_OR_RETURN(target, store_->GetComputeTarget(name));
  }
  const bool own = per_account && target->has_ssh();
  if (!own && shared != nullptr) {
    if (per_account) by_target_[account_key] = shared;  // not asked again
    return shared;
  }
  AMLD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> made,
                        own ? factories_.ssh_as(*target, *account) : Make(*target));
  made->SetExitCallback([this](const std::string& run_id, absl::StatusOr<ExitStatus> outcome) {
    OnExit(run_id, std::move(outcome));
  });
  made->SetProgressCallback([this](const std::string& run_id, const RunProgress& progress) {
    OnProgress(run_id, progress);
  });
  Executor* executor = made.get();
  owned_.push_back(std::move(made));
  if (!own) by_target_[name] = executor;
  if (per_account) by_target_[account_key] = executor;
  return executor;
}

absl::StatusOr<std::optional<RunAs>> ExecutorRegistry::AccountOf(const v1::Run& run) const {
  const std::string& target = run.config().compute_target();
  if (!factories_.ssh_as || target.empty() || target == amld::storage::kLocalTargetName) {
    return std::optional<RunAs>();
  }
  AMLD_ASSIGN_OR_RETURN(RunAs account, LookupAccount(run.submitter_uid()));
  return std::optional<RunAs>(std::move(account));
}

std::string ExecutorRegistry::Placement(const std::string& run_id,
                                        const std::string& handle) const {
  Executor* executor = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = by_run_.find(run_id); it != by_run_.end()) executor = it->second;
  }
  if (executor == nullptr) {
    // The run ended before anyone asked: find its executor by its target.
    absl::StatusOr<v1::Run> run = store_->GetRun(run_id);
    if (!run.ok()) return "";
    absl::StatusOr<Executor*> found =
        const_cast<ExecutorRegistry*>(this)->ExecutorFor(run->config().compute_target());
    if (!found.ok()) return "";
    executor = *found;
  }
  return executor->Placement(run_id, handle);
}

absl::StatusOr<std::string> ExecutorRegistry::Launch(const LaunchSpec& spec) {
  AMLD_ASSIGN_OR_RETURN(Executor * executor, ExecutorFor(spec.compute_target, spec.run_as));
  {
    // Before the launch: its exit may be reported before Launch returns.
    absl::MutexLock lock(&mu_);
    by_run_[spec.run_id] = executor;
  }
  absl::StatusOr<std::string> handle = executor->Launch(spec);
  if (!handle.ok()) {
    absl::MutexLock lock(&mu_);
    by_run_.erase(spec.run_id);
  }
  return handle;
}

absl::Status ExecutorRegistry::CheckCanEverHold(const LaunchSpec& spec) {
  AMLD_ASSIGN_OR_RETURN(Executor * executor, ExecutorFor(spec.compute_target));
  return executor->CheckCanEverHold(spec);
}

absl::Status ExecutorRegistry::Reattach(const std::string& run_id,
                                        const std::filesystem::path& run_dir,
                                        const std::string& handle) {
  AMLD_ASSIGN_OR_RETURN(v1::Run run, store_->GetRun(run_id));
  AMLD_ASSIGN_OR_RETURN(std::optional<RunAs> account, AccountOf(run));
  AMLD_ASSIGN_OR_RETURN(Executor * executor, ExecutorFor(run.config().compute_target(), account));
  {
    absl::MutexLock lock(&mu_);
    by_run_[run_id] = executor;
  }
  absl::Status attached = executor->Reattach(run_id, run_dir, handle);
  if (!attached.ok()) {
    absl::MutexLock lock(&mu_);
    by_run_.erase(run_id);
  }
  return attached;
}

absl::StatusOr<std::string> ExecutorRegistry::FindUnrecorded(
    const std::string& run_id, const std::filesystem::path& run_dir,
    const std::optional<RunAs>& run_as) {
  AMLD_ASSIGN_OR_RETURN(v1::Run run, store_->GetRun(run_id));
  AMLD_ASSIGN_OR_RETURN(std::optional<RunAs> account, AccountOf(run));
  AMLD_ASSIGN_OR_RETURN(Executor * executor, ExecutorFor(run.config().compute_target(), account));
  return executor->FindUnrecorded(run_id, run_dir, run_as ? run_as : account);
}

absl::Status ExecutorRegistry::Cancel(const std::string& run_id) {
  Executor* executor = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_run_.find(run_id);
    if (it == by_run_.end()) {
      return absl::NotFoundError(absl::StrCat("no executor holds run ", run_id));
    }
    executor = it->second;
  }
  return executor->Cancel(run_id);
}

void ExecutorRegistry::Forget(const std::string& target_name) {
  if (target_name == amld::storage::kLocalTargetName) return;
  absl::MutexLock lock(&mu_);
  // Its own and every account's (stay in owned_: retired, not destroyed).
  const std::string accounts = absl::StrCat(target_name, "\n");
  for (auto it = by_target_.begin(); it != by_target_.end();) {
    auto here = it++;
    if (here->first == target_name || absl::StartsWith(here->first, accounts)) {
      by_target_.erase(here);
    }
  }
}

absl::Status ExecutorRegistry::ValidateTarget(const v1::ComputeTarget& target) const {
  AMLD_RETURN_IF_ERROR(amld::storage::ValidateComputeTarget(target));
  const TargetValidator& validate =
      target.has_ssh() ? factories_.validate_ssh : factories_.validate_slurm;
  if (!validate) {
    // Never let settings through unchecked (an ssh host starting with '-'
    // would become an ssh option).
    return amld::storage::InvalidComputeTarget(
        target.name(), "this daemon has no executor for this kind of target to check it");
  }
  return validate(target);
}

std::vector<std::string> ExecutorRegistry::Kinds() const {
  std::vector<std::string> kinds = {"local"};
  if (factories_.ssh) kinds.push_back("ssh");
  if (factories_.slurm) kinds.push_back("slurm");
  return kinds;
}

bool HasSpaceOrControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= ' ' || u == 0x7f;
  });
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\n\r\0", 3)) != std::string_view::npos;
}

}  // namespace amld::daemon
