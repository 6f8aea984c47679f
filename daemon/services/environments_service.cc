// Environments service: registered and curated environments, over the run
// manager's EnvironmentRegistry (daemon/envs/env_registry.h), and the cache
// of built ones (`aml env build`, `aml env prune`; daemon/envs/env_builder.h).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "amld/v1/environments.grpc.pb.h"
#include "base/file_util.h"
#include "daemon/envs/env_builder.h"
#include "daemon/envs/env_registry.h"
#include "daemon/runs/run_manager.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

class EnvironmentsService final : public pb::Environments::Service {
 public:
  explicit EnvironmentsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status RegisterEnvironment(grpc::ServerContext* context,
                                   const pb::RegisterEnvironmentRequest* request,
                                   pb::RegisteredEnvironment* response) override {
    if (absl::Status s = deps_.access.CheckManageTargets(CallerUid(deps_, *context),
                                                         "register environments");
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    if (registry() == nullptr) return Off();
    return Reply(registry()->Register(request->environment()), response);
  }

  grpc::Status GetEnvironment(grpc::ServerContext*, const pb::GetEnvironmentRequest* request,
                              pb::RegisteredEnvironment* response) override {
    if (registry() == nullptr) return Off();
    return Reply(registry()->Get(request->name(), request->version()), response);
  }

  grpc::Status ListEnvironments(grpc::ServerContext*, const pb::ListEnvironmentsRequest*,
                                pb::ListEnvironmentsResponse* response) override {
    if (registry() == nullptr) return Off();
    absl::StatusOr<std::vector<pb::RegisteredEnvironment>> all = registry()->List();
    if (!all.ok()) return ToGrpcStatus(all.status());
    for (pb::RegisteredEnvironment& e : *all) *response->add_environments() = std::move(e);
    return grpc::Status::OK;
  }

  grpc::Status BuildEnvironment(grpc::ServerContext* context,
                                const pb::BuildEnvironmentRequest* request,
                                grpc::ServerWriter<pb::BuildEnvironmentProgress>* writer) override {
    if (registry() == nullptr) return Off();
    absl::StatusOr<pb::RegisteredEnvironment> found =
        registry()->Get(request->name(), request->version());
    if (!found.ok()) return ToGrpcStatus(found.status());
    const pb::Environment& env = found->environment();
    const std::string label = absl::StrCat(env.name(), ":", env.version());
    if (!IsManagedEnvironment(env)) {
      pb::BuildEnvironmentProgress line;
      line.set_output(absl::StrCat("amld: ", label, " is user-managed (it runs with ",
                                   env.interpreter_path().empty() ? "python3" : env.interpreter_path(),
                                   " as it is): nothing to build\n"));
      writer->Write(line);
      return grpc::Status::OK;
    }
    if (absl::Status s = CheckBuilds(); !s.ok()) return ToGrpcStatus(s);
    absl::StatusOr<EnvironmentSpec> spec = builder()->Check(env);
    if (!spec.ok()) return ToGrpcStatus(spec.status());
    const std::string digest = SpecDigest(*spec);
    // In system mode the caller's environment: built as them, in their cache
    // (or the shared one), as their runs would take it.
    const std::optional<uid_t> user = Caller(context);
    const bool built_before = builder()->Built(*spec, user).ok();

    // The builder appends the output to a file; this call sends it on as it
    // grows. The file goes when the build ends (this call may be gone by
    // then: the build goes on, as a run's would).
    struct Outcome {
      absl::Notification done;
      absl::StatusOr<std::filesystem::path> prefix;
    };
    auto outcome = std::make_shared<Outcome>();
    static std::atomic<int> counter{0};
    const int n = ++counter;
    const std::string holder = absl::StrCat("aml env build ", label, " #", n);
    const std::filesystem::path log =
        deps_.runs->options().environments.root / absl::StrCat(".buildlog-", ::getpid(), "-", n);
    base::ScopedFd reader(::open(log.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!reader.valid()) {
      return ToGrpcStatus(base::ErrnoStatus(errno, "create build log", log.string()));
    }
    EnvironmentBuilder* envs = builder();
    envs->Acquire(*spec, BuildRequest{holder, log, "", user},
                  [envs, holder, log, outcome](absl::StatusOr<std::filesystem::path> prefix) {
                    envs->Release(holder);
                    std::error_code ec;
                    std::filesystem::remove(log, ec);  // open here until read to its end
                    outcome->prefix = std::move(prefix);
                    outcome->done.Notify();
                  });
    auto send_new_output = [&] {
      char buf[16384];
      for (;;) {
        const ssize_t got = ::read(reader.get(), buf, sizeof buf);
        if (got <= 0) return;
        pb::BuildEnvironmentProgress chunk;
        chunk.set_output(std::string(buf, static_cast<size_t>(got)));
        if (!writer->Write(chunk)) return;
      }
    };
    for (;;) {
      const bool finished = outcome->done.WaitForNotificationWithTimeout(absl::Milliseconds(200));
      send_new_output();
      if (finished) break;
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
    }
    if (!outcome->prefix.ok()) {
      return ToGrpcStatus(absl::FailedPreconditionError(
          absl::StrCat("could not build environment ", label, " (", ShortDigest(digest),
                       "): ", outcome->prefix.status().message())));
    }
    pb::BuildEnvironmentProgress last;
    last.set_digest(digest);
    last.set_prefix(outcome->prefix->string());
    last.set_built_now(!built_before);
    writer->Write(last);
    return grpc::Status::OK;
  }

  grpc::Status PruneEnvironments(grpc::ServerContext* context, const pb::PruneEnvironmentsRequest*,
                                 pb::PruneEnvironmentsResponse* response) override {
    if (builder() == nullptr) {
      return ToGrpcStatus(absl::UnimplementedError(
          "this daemon keeps no environment cache (it has no data dir for environments)"));
    }
    // System mode: a user prunes their own cache; root and admin_group
    // every cache (the shared one and each user's). User mode: the one.
    const uid_t caller = CallerUid(deps_, *context);
    const std::optional<uid_t> scope =
        deps_.access.system_mode() && !deps_.access.IsAdmin(caller) ? std::optional<uid_t>(caller)
                                                                    : std::nullopt;
    for (const CachedEnvironment& env : builder()->Prune(scope)) {
      pb::CachedEnvironment* out = response->add_removed();
      out->set_digest(env.digest);
      out->set_prefix(env.folder.string());
      out->set_bytes(env.bytes);
      out->mutable_last_used()->set_seconds(absl::ToUnixSeconds(env.last_used));
      response->set_bytes_freed(response->bytes_freed() + env.bytes);
    }
    const CacheUsage left = builder()->Usage(scope);
    response->set_kept(left.count);
    response->set_kept_bytes(left.bytes);
    return grpc::Status::OK;
  }

 private:
  EnvironmentRegistry* registry() const { return deps_.runs->environment_registry(); }
  EnvironmentBuilder* builder() const { return deps_.runs->environments(); }
  // What refuses a managed environment at submit, for `aml env build`.
  absl::Status CheckBuilds() const {
    if (builder() == nullptr) {
      return absl::UnimplementedError(
          "this daemon does not build managed environments (it has no environment cache)");
    }
    return absl::OkStatus();
  }
  // Whose environments a call acts on: the caller in system mode.
  std::optional<uid_t> Caller(grpc::ServerContext* context) const {
    if (!deps_.access.system_mode()) return std::nullopt;
    return CallerUid(deps_, *context);
  }
  static grpc::Status Off() {
    return ToGrpcStatus(absl::UnimplementedError(
        "this daemon keeps no environment registry (it has no data dir for environments)"));
  }
  static grpc::Status Reply(absl::StatusOr<pb::RegisteredEnvironment> result,
                            pb::RegisteredEnvironment* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = std::move(*result);
    return grpc::Status::OK;
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewEnvironmentsService(const ServiceDeps& deps) {
  return std::make_unique<EnvironmentsService>(deps);
}

}  // namespace amld::daemon
