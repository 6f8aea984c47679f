// InProcessDaemonTest: a gtest fixture with the whole daemon (daemon/daemon.h)
// running in the test's process on a temp data dir and socket, with stubs of
// its services connected over that socket. Two run slots, a 1 s kill grace,
// the amld-shim of this build. A test may change options_ and StartDaemon()
// again after daemon_->Shutdown().
//
// Thread-safety: as a gtest fixture, used from the test's thread.
#pragma once

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/cas.grpc.pb.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "amld/v1/experiments.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "daemon/daemon.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/test_util.h"

namespace amld::testing {

class InProcessDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = dir_ / "data";
    options_.socket_path = dir_ / "sock/amld.sock";
    options_.shim_path = BinaryDir() / "bin/amld-shim";
    options_.log_to_stderr = false;
    options_.runs.max_concurrent_runs = 2;
    options_.runs.kill_grace = absl::Seconds(1);
    StartDaemon();
  }

  void StartDaemon() {
    absl::StatusOr<std::unique_ptr<daemon::Daemon>> d = daemon::Daemon::Start(options_);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    auto channel = grpc::CreateChannel("unix:" + daemon_->socket_path().string(),
                                       grpc::InsecureChannelCredentials());
    runs_ = amld::v1::Runs::NewStub(channel);
    cas_ = amld::v1::Cas::NewStub(channel);
    experiments_ = amld::v1::Experiments::NewStub(channel);
    info_ = amld::v1::Daemon::NewStub(channel);
  }

  TempDir dir_;
  daemon::DaemonOptions options_;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::unique_ptr<amld::v1::Runs::Stub> runs_;
  std::unique_ptr<amld::v1::Cas::Stub> cas_;
  std::unique_ptr<amld::v1::Experiments::Stub> experiments_;
  std::unique_ptr<amld::v1::Daemon::Stub> info_;
};

}  // namespace amld::testing
