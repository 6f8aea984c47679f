// Daemon service: what a client needs to know about the daemon.
#include <optional>

#include "amld/v1/daemon.grpc.pb.h"
#include "base/user_names.h"
#include "spdlog/spdlog.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const absl::Duration since_epoch = t - absl::UnixEpoch();
  out->set_seconds(absl::ToInt64Seconds(since_epoch));
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(since_epoch % absl::Seconds(1))));
}

void ToProto(const amld::storage::GcReport& r, pb::GcReport* out) {
  ToProto(r.started, out->mutable_start_time());
  out->set_duration_ms(absl::ToInt64Milliseconds(r.took));
  out->set_grace_seconds(absl::ToInt64Seconds(r.grace));
  out->set_objects_kept(r.stats.objects_kept);
  out->set_objects_removed(r.stats.objects_removed);
  out->set_bytes_removed(r.stats.bytes_removed);
  out->set_temp_files_removed(r.stats.temp_files_removed);
  if (!r.status.ok()) out->set_error(r.status.ToString());
}

class DaemonService final : public pb::Daemon::Service {
 public:
  explicit DaemonService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status GetInfo(grpc::ServerContext* context, const pb::GetInfoRequest*,
                       pb::DaemonInfo* info) override {
    const DaemonFacts& facts = deps_.facts;
    info->set_version(facts.version);
    info->set_mode(deps_.access.system_mode() ? pb::DaemonInfo::SYSTEM : pb::DaemonInfo::USER);
    info->set_data_dir(facts.data_dir.string());
    info->set_socket_path(facts.socket_path.string());
    info->set_pid(facts.pid);
    ToProto(facts.start_time, info->mutable_start_time());
    for (const std::string& e : facts.executors) info->add_executors(e);
    absl::StatusOr<absl::flat_hash_map<amld::storage::RunStatus, int64_t>> counts =
        deps_.store->CountByStatus();
    if (!counts.ok()) return ToGrpcStatus(counts.status());
    for (const auto& [status, n] : *counts) {
      if (!amld::storage::IsTerminal(status) && n > 0) {
        (*info->mutable_run_counts())[amld::storage::StatusName(status)] = n;
      }
    }
    auto& counters = *info->mutable_counters();
    counters["cas_blobs_uploaded"] = deps_.counters->cas_blobs_uploaded.load();
    counters["cas_bytes_uploaded"] = deps_.counters->cas_bytes_uploaded.load();
    counters["runs_submitted"] = deps_.runs->runs_submitted();
    info->set_max_batch_bytes(kMaxBatchBytes);
    info->set_max_concurrent_runs(deps_.runs->max_concurrent_runs());
    const RunManager::LocalTargetState local = deps_.runs->local_target();
    info->set_cpus(local.capacity.cpus);
    info->set_free_cpus(local.free_cpus);
    for (int id : local.capacity.gpus) info->add_gpus(id);
    for (int id : local.free_gpus) info->add_free_gpus(id);
    const RunManagerOptions& run_options = deps_.runs->options();
    if (const EnvironmentBuilder* envs = deps_.runs->environments(); envs != nullptr) {
      // System mode: the caller's own cache.
      const CacheUsage cache =
          envs->Usage(deps_.access.system_mode()
                          ? std::optional<uid_t>(CallerUid(deps_, *context))
                          : std::nullopt);
      info->set_environment_cache_count(cache.count);
      info->set_environment_cache_bytes(cache.bytes);
      info->set_environment_cache_in_use(cache.in_use);
      info->set_environment_cache_budget_bytes(run_options.environments.cache_budget);
    }
    info->set_default_run_duration_seconds(run_options.default_run_duration_seconds);
    info->set_max_run_duration_seconds(run_options.max_run_duration_seconds);
    info->set_kill_grace_seconds(absl::ToInt64Seconds(run_options.kill_grace));
    for (const UserUsage& u : local.users) {
      pb::UserUsage* usage = info->add_user_usage();
      usage->set_uid(u.user);
      usage->set_user(base::LoginName(u.user).value_or(""));
      usage->set_running(u.running);
      usage->set_gpus(u.gpus);
      usage->set_queued(u.queued);
    }
    info->set_per_user_max_running_runs(run_options.user_limits.max_running_runs);
    info->set_per_user_max_gpus(run_options.user_limits.max_gpus);
    if (deps_.gc != nullptr) {
      info->set_gc_interval_seconds(absl::ToInt64Seconds(deps_.gc->options().interval));
      info->set_gc_grace_seconds(absl::ToInt64Seconds(deps_.gc->options().grace));
      const amld::storage::GcReport last = deps_.gc->Last();
      if (last.started != absl::InfinitePast()) ToProto(last, info->mutable_last_gc());
    }
    return grpc::Status::OK;
  }

  grpc::Status CollectGarbage(grpc::ServerContext*, const pb::CollectGarbageRequest* request,
                              pb::GcReport* response) override {
    if (deps_.gc == nullptr) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this daemon collects no garbage");
    }
    std::optional<absl::Duration> grace;
    if (request->has_grace_seconds()) {
      if (request->grace_seconds() < 0) {
        return ToGrpcStatus(absl::InvalidArgumentError(
            "grace_seconds must be 0 or more: objects younger than it are kept"));
      }
      grace = absl::Seconds(request->grace_seconds());
    }
    absl::StatusOr<amld::storage::GcReport> report = deps_.gc->CollectNow(grace);
    if (!report.ok()) return ToGrpcStatus(report.status());
    if (deps_.log != nullptr) {
      deps_.log->info("gc (asked): {} objects removed, {} bytes freed, {} kept, {} ms",
                      report->stats.objects_removed, report->stats.bytes_removed,
                      report->stats.objects_kept, absl::ToInt64Milliseconds(report->took));
    }
    ToProto(*report, response);
    return grpc::Status::OK;
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewDaemonService(const ServiceDeps& deps) {
  return std::make_unique<DaemonService>(deps);
}

}  // namespace amld::daemon
