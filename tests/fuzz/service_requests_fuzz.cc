// libFuzzer target: every request message through the daemon's service
// handlers. One daemon (daemon/daemon.h) runs in this process on a temp data
// dir; each input picks a method of the amld.v1 services (first byte) and
// sends the rest, as it is, as that method's serialized request over the
// daemon's socket — what a hostile or broken client could send. The daemon
// must answer (any status) and stay up: the fuzzer asks GetInfo after each
// input. Its shim is /bin/false, so no run can ever start a process.
// Snapshots.WatchRoot is left out: it reads whatever folder it is given, by
// design, and a fuzzed path of "/" would walk the machine.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "daemon/daemon.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace {

namespace fs = std::filesystem;

struct Harness {
  std::unique_ptr<amld::daemon::Daemon> daemon;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  std::unique_ptr<amld::v1::Daemon::Stub> info;
  std::vector<std::string> methods;  // "/amld.v1.Runs/SubmitRun", ...
};

Harness* Start() {
  auto* h = new Harness;
  const fs::path dir = fs::temp_directory_path() / ("amld-service-fuzz." + std::to_string(::getpid()));
  fs::remove_all(dir);
  amld::daemon::DaemonOptions options;
  options.data_dir = dir / "data";
  options.socket_path = dir / "amld.sock";
  options.shim_path = "/bin/false";
  options.log_to_stderr = false;
  options.runs.max_concurrent_runs = 2;
  options.gc.interval = absl::ZeroDuration();
  auto started = amld::daemon::Daemon::Start(options);
  if (!started.ok()) std::abort();
  h->daemon = std::move(*started);
  h->channel = grpc::CreateChannel("unix:" + h->daemon->socket_path().string(),
                                   grpc::InsecureChannelCredentials());
  h->stub = std::make_unique<grpc::GenericStub>(h->channel);
  h->info = amld::v1::Daemon::NewStub(h->channel);
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name : {"amld.v1.Runs", "amld.v1.Cas", "amld.v1.Experiments", "amld.v1.Daemon",
                           "amld.v1.ComputeTargets", "amld.v1.Environments",
                           "amld.v1.Snapshots"}) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string method = "/" + std::string(name) + "/" + service->method(i)->name();
      // Kept in the list (the seeds' first bytes index it), answered by
      // UnwatchRoot's handler instead.
      h->methods.push_back(method == "/amld.v1.Snapshots/WatchRoot"
                               ? "/amld.v1.Snapshots/UnwatchRoot" : method);
    }
  }
  if (h->methods.empty()) std::abort();
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness* h = Start();
  if (size == 0) return 0;
  const std::string& method = h->methods[data[0] % h->methods.size()];
  grpc::ByteBuffer request, response;
  grpc::Slice slice(reinterpret_cast<const char*>(data) + 1, size - 1);
  request = grpc::ByteBuffer(&slice, 1);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  absl::Notification done;
  h->stub->UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                     [&](grpc::Status) { done.Notify(); });
  done.WaitForNotification();
  // Still up?
  grpc::ClientContext info_ctx;
  info_ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  amld::v1::DaemonInfo info;
  if (!h->info->GetInfo(&info_ctx, amld::v1::GetInfoRequest(), &info).ok()) std::abort();
  return 0;
}
