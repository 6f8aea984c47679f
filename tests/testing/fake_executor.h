// FakeExecutor: an Executor (daemon/executors/executor.h) that starts nothing.
// It records what reaches it, and the test decides when and how each
// "process" ends (Exit, ExitCode) and what an executor whose runs wait
// elsewhere would report meanwhile (Progress).
//
// Launch returns the handle "handle:<run id>"; Placement is "local", or
// "<name>:<handle>" for a named one (to tell several apart behind a
// registry); Reattach records "<run id> <handle>".
//
// Thread-safety: none; used from the test's thread (the callbacks it calls
// run there too).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "daemon/executors/executor.h"

namespace amld::testing {

class FakeExecutor final : public daemon::Executor {
 public:
  FakeExecutor() = default;
  explicit FakeExecutor(std::string name) : name_(std::move(name)) {}

  void SetExitCallback(ExitCallback callback) override { exit_callback_ = std::move(callback); }
  void SetProgressCallback(ProgressCallback callback) override {
    progress_callback_ = std::move(callback);
  }
  std::string Placement(const std::string& run_id, const std::string& handle) const override {
    return name_.empty() ? "local" : name_ + ":" + handle;
  }
  absl::StatusOr<std::string> Launch(const daemon::LaunchSpec& spec) override {
    launched.push_back(spec.run_id);
    specs[spec.run_id] = spec;
    if (!launch_error.ok()) return launch_error;
    if (on_launch) on_launch(spec);
    return "handle:" + spec.run_id;
  }
  absl::Status Reattach(const std::string& run_id, const std::filesystem::path& run_dir,
                        const std::string& handle) override {
    reattached.push_back(run_id + " " + handle);
    if (on_reattach) on_reattach(run_id);
    return reattach_error;
  }
  absl::StatusOr<std::string> FindUnrecorded(const std::string& run_id,
                                             const std::filesystem::path& run_dir,
                                             const std::optional<daemon::RunAs>& run_as) override {
    looked_for.push_back(run_id);
    looked_for_as.push_back(run_as ? static_cast<int64_t>(run_as->uid) : -1);
    auto it = unrecorded.find(run_id);
    if (it == unrecorded.end()) return absl::NotFoundError("no job named " + run_id);
    return it->second;
  }
  absl::Status Cancel(const std::string& run_id) override {
    canceled.push_back(run_id);
    return absl::OkStatus();
  }

  // The "process" of `run_id` ends with `outcome`.
  void Exit(const std::string& run_id, absl::StatusOr<daemon::ExitStatus> outcome) {
    exit_callback_(run_id, std::move(outcome));
  }
  void ExitCode(const std::string& run_id, int code) {
    daemon::ExitStatus e;
    e.exit_code = code;
    Exit(run_id, e);
  }
  // What an executor whose runs wait elsewhere (Slurm) reports.
  void Progress(const std::string& run_id, bool started, const std::string& placement,
                const std::string& detail) {
    daemon::RunProgress p;
    p.started = started;
    p.placement = placement;
    p.detail = detail;
    progress_callback_(run_id, p);
  }

  std::vector<std::string> launched;
  std::vector<std::string> reattached;
  std::vector<std::string> canceled;
  std::map<std::string, daemon::LaunchSpec> specs;
  absl::Status launch_error;                                 // Launch fails with it when set
  absl::Status reattach_error;                               // what Reattach returns
  std::function<void(const daemon::LaunchSpec&)> on_launch;  // inside Launch, before it returns
  std::function<void(const std::string&)> on_reattach;       // inside Reattach
  std::map<std::string, std::string> unrecorded;  // what FindUnrecorded finds: run id → handle
  std::vector<std::string> looked_for;            // FindUnrecorded's calls
  std::vector<int64_t> looked_for_as;             // their run_as uids (-1: none)

 private:
  std::string name_;
  ExitCallback exit_callback_;
  ProgressCallback progress_callback_;
};

}  // namespace amld::testing
