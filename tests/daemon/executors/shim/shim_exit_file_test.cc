// exit.json on a full disk (issue 19): amld-shim checks every step of its
// write and keeps trying until space returns, so the run's exit code is
// never lost nor torn; a torn or empty exit.json read by the daemon is a lost
// exit code with a reason, never "exit code 0".
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "base/file_util.h"
#include "daemon/executors/exit_status.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;

// A 256 KiB tmpfs on `at`, unmounted at the end; skipped where mounting is
// not allowed (the test needs root, like the ssh and slurm fixtures).
class SmallDisk {
 public:
  explicit SmallDisk(fs::path at) : at_(std::move(at)) {
    fs::create_directories(at_);
    mounted_ = ::mount("tmpfs", at_.c_str(), "tmpfs", 0, "size=256k") == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Writes a file until the disk is full.
  void Fill(const fs::path& file) {
    std::ofstream out(file, std::ios::binary);
    std::string block(4096, 'x');
    while (out.write(block.data(), block.size())) {
    }
  }

 private:
  fs::path at_;
  bool mounted_ = false;
};

TEST(ShimExitFileTest, AFullDiskDelaysExitJsonUntilSpaceReturnsAndLosesNothing) {
  TempDir dir;
  SmallDisk disk(dir / "disk");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  const fs::path run = dir / "disk/run";
  for (const char* sub : {"wd", "user_logs", "system_logs"}) fs::create_directories(run / sub);
  disk.Fill(dir / "disk/filler");

  testing::Subprocess shim({(testing::BinaryDir() / "bin/amld-shim").string(), "--foreground",
                            "--run-dir=" + run.string(), "--", "/bin/sh", "-c", "exit 7"});
  // The run has ended; its exit code cannot be written yet. Nothing torn
  // may appear meanwhile, and the supervisor waits.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_FALSE(fs::exists(run / shim::kExitFileName));
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_THAT(e.path().filename().string(), ::testing::Not(HasSubstr(".tmp."))) << e.path();
  EXPECT_EQ(::kill(shim.pid(), 0), 0) << "the supervisor gave up on a full disk";

  fs::remove(dir / "disk/filler");  // space returns
  testing::ProcessResult result = shim.Wait();
  EXPECT_EQ(result.exit_code, 7) << result.err;
  EXPECT_THAT(result.err, HasSubstr("no space to write exit.json"));
  absl::StatusOr<ExitStatus> status = ReadExitStatus(run);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->exit_code, 7);
}

TEST(ShimExitFileTest, AnEmptyOrTornExitJsonIsALostExitCodeNotZero) {
  TempDir dir;
  for (std::string text : {std::string(), std::string("{\"version\": 1, \"exit_co")}) {
    testing::WriteFile(dir / shim::kExitFileName, text);
    absl::StatusOr<ExitStatus> status = ReadExitStatus(dir.path());
    ASSERT_FALSE(status.ok()) << "read as exit code " << status->exit_code;
    EXPECT_THAT(status.status().message(), HasSubstr("supervisor lost"));
    EXPECT_THAT(status.status().message(), HasSubstr("exit code is lost"));
  }
}

}  // namespace
}  // namespace amld::daemon
