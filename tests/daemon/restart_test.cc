// The real build/bin/amld as a process, killed with SIGKILL and started
// again on the same data dir while runs go on under their supervisors:
// nothing runs twice, nothing is lost, deadlines hold while no daemon runs,
// cancel leaves no process behind, GPUs are never shared, and a bad config
// file stops the daemon saying where.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "amld/v1/cas.grpc.pb.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using ::testing::ElementsAre;
using testing::BinaryDir;
using testing::Eventually;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

const fs::path kAmld = BinaryDir() / "bin/amld";
const fs::path kShim = BinaryDir() / "bin/amld-shim";
// Generous: the machine may be busy compiling.
constexpr absl::Duration kPatience = absl::Seconds(120);

// The scripts the runs execute. Each appends what it did to the file given
// as $1; "hold" waits for the file $2 to appear.
constexpr char kQuickSh[] = "echo \"$AMLD_RUN_ID\" >> \"$1\"\n";
constexpr char kHoldSh[] = R"(echo "$AMLD_RUN_ID" >> "$1"
while [ ! -e "$2" ]; do sleep 0.05; done
)";
// $1: the log; $2: a folder where release-<run id> lets the run end.
constexpr char kGpuSh[] = R"(echo "start $AMLD_RUN_ID ${CUDA_VISIBLE_DEVICES-unset}" >> "$1"
while [ ! -e "$2/release-$AMLD_RUN_ID" ]; do sleep 0.05; done
echo "end $AMLD_RUN_ID" >> "$1"
)";
// $1: a folder for pid files. Everything here ignores SIGTERM: a child in
// the run's process group, and a grandchild that left it for a session of
// its own.
constexpr char kStubbornSh[] = R"(trap '' TERM
sh -c 'sleep 1000 & echo $! > "$1/ingroup.pid.tmp"; mv "$1/ingroup.pid.tmp" "$1/ingroup.pid"; wait' sh "$1" &
setsid sh -c 'echo $$ > "$1/escaped.pid.tmp"; mv "$1/escaped.pid.tmp" "$1/escaped.pid"; exec sleep 1000' sh "$1" &
wait
)";

bool Terminal(const pb::Run& r) {
  return r.status() == pb::RunStatus::COMPLETED || r.status() == pb::RunStatus::FAILED ||
         r.status() == pb::RunStatus::CANCELED;
}

std::vector<std::string> Lines(const fs::path& file) {
  std::vector<std::string> lines = absl::StrSplit(ReadFile(file), '\n', absl::SkipEmpty());
  return lines;
}

// Field 22 of /proc/<pid>/stat, or nullopt when the process is gone (a
// zombie counts as gone: it runs nothing).
std::optional<std::string> ProcessStartTime(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  size_t paren = stat.rfind(')');
  if (stat.empty() || paren == std::string::npos) return std::nullopt;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  if (fields.size() < 20 || fields[0] == "Z") return std::nullopt;
  return fields[19];
}

// One amld process on a data dir; started again after a kill on the same
// dir and socket.
class AmldProcess {
 public:
  explicit AmldProcess(const fs::path& dir)
      : data_(dir / "data"), socket_(dir / "amld.sock"), out_(dir / "amld-out.txt") {}
  ~AmldProcess() {
    if (pid_ > 0) Kill9();
  }

  const fs::path& data_dir() const { return data_; }
  pid_t pid() const { return pid_; }
  std::string Output() const { return ReadFile(out_) + ReadFile(data_ / "amld.log"); }

  // Starts amld and waits until it answers. False when it exited instead.
  bool Start(const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> argv = {kAmld.string(),   "--data-dir", data_.string(), "--socket",
                                     socket_.string(), "--shim",     kShim.string()};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid_ = Spawn(argv);
    // Plain connects first: a gRPC channel that failed before the daemon
    // listened waits out its reconnect backoff, seconds after it does.
    if (!Eventually([&] { return Exited() || SocketAccepts(); }, kPatience)) return false;
    Connect();
    const bool up = static_cast<bool>(Eventually(
        [&] {
          if (Exited()) return true;
          pb::DaemonInfo info;
          return Info(&info).ok() && info.pid() == pid_;
        },
        kPatience));
    return up && pid_ > 0;
  }

  // Runs amld to its end (it is expected to refuse to start); its exit code.
  int RunToExit(const std::vector<std::string>& extra_args) {
    std::vector<std::string> argv = {kAmld.string(),   "--data-dir", data_.string(), "--socket",
                                     socket_.string(), "--shim",     kShim.string()};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid_t pid = Spawn(argv);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void Kill9() {
    ASSERT_GT(pid_, 0);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int Stop() {
    runs_.reset();  // an open connection would hold shutdown for its grace
    cas_.reset();
    daemon_.reset();
    channel_.reset();
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  grpc::Status Info(pb::DaemonInfo* info) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ctx.set_wait_for_ready(true);
    return daemon_->GetInfo(&ctx, pb::GetInfoRequest(), info);
  }

  // Uploads `src` like a client and returns its root digest.
  pb::Digest Upload(const fs::path& src) {
    auto snapshot = amld::storage::BuildSnapshot(src);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    pb::BatchUpdateBlobsRequest batch;
    for (const auto& [digest, bytes] : snapshot->directories) {
      auto* r = batch.add_requests();
      amld::storage::ToProto(digest, r->mutable_digest());
      r->set_data(bytes);
    }
    for (const auto& f : snapshot->files) {
      auto* r = batch.add_requests();
      amld::storage::ToProto(f.digest, r->mutable_digest());
      r->set_data(ReadFile(f.abs_path));
    }
    pb::BatchUpdateBlobsResponse stored;
    grpc::ClientContext ctx;
    grpc::Status s = cas_->BatchUpdateBlobs(&ctx, batch, &stored);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const auto& r : stored.responses()) EXPECT_EQ(r.code(), 0) << r.message();
    pb::Digest root;
    amld::storage::ToProto(snapshot->root, &root);
    return root;
  }

  grpc::Status TrySubmit(const pb::RunConfig& config, pb::Run* run) {
    pb::SubmitRunRequest req;
    *req.mutable_config() = config;
    pb::SubmitRunResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = runs_->SubmitRun(&ctx, req, &resp);
    *run = resp.run();
    return s;
  }
  std::string Submit(const pb::RunConfig& config) {
    pb::Run run;
    grpc::Status s = TrySubmit(config, &run);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return run.id();
  }

  pb::Run Get(const std::string& id) {
    pb::GetRunRequest req;
    req.set_run_id(id);
    pb::Run run;
    grpc::ClientContext ctx;
    grpc::Status s = runs_->GetRun(&ctx, req, &run);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return run;
  }

  grpc::Status Cancel(const std::string& id) {
    pb::CancelRunRequest req;
    req.set_run_id(id);
    req.set_reason("test");
    pb::Run run;
    grpc::ClientContext ctx;
    return runs_->CancelRun(&ctx, req, &run);
  }

  // Waits until `done` holds for the run; fails the test (with the run and
  // the daemon's log) when it does not within kPatience.
  pb::Run WaitFor(const std::string& id, const std::function<bool(const pb::Run&)>& done,
                  const std::string& what) {
    pb::Run run;
    if (!Eventually([&] { return done(run = Get(id)); }, kPatience)) {
      ADD_FAILURE() << "run " << id << " never became " << what << "; it is "
                    << run.ShortDebugString() << "\n"
                    << Output();
    }
    return run;
  }
  pb::Run WaitStatus(const std::string& id, pb::RunStatus::Value status) {
    return WaitFor(
        id, [&](const pb::Run& r) { return r.status() == status; },
        pb::RunStatus::Value_Name(status));
  }
  pb::Run WaitEnd(const std::string& id) { return WaitFor(id, Terminal, "terminal"); }

 private:
  bool SocketAccepts() const {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_.c_str());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  void Connect() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // nothing of the last daemon's
    channel_ = grpc::CreateCustomChannel("unix:" + socket_.string(),
                                         grpc::InsecureChannelCredentials(), args);
    runs_ = pb::Runs::NewStub(channel_);
    cas_ = pb::Cas::NewStub(channel_);
    daemon_ = pb::Daemon::NewStub(channel_);
  }

  pid_t Spawn(const std::vector<std::string>& argv) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << argv[0];
    return pid;
  }

  bool Exited() {
    if (pid_ <= 0) return true;
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  fs::path data_;
  fs::path socket_;
  fs::path out_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Runs::Stub> runs_;
  std::unique_ptr<pb::Cas::Stub> cas_;
  std::unique_ptr<pb::Daemon::Stub> daemon_;
};

class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "src/quick.sh", kQuickSh);
    WriteFile(dir_ / "src/hold.sh", kHoldSh);
    WriteFile(dir_ / "src/gpu.sh", kGpuSh);
    WriteFile(dir_ / "src/stubborn.sh", kStubbornSh);
    fs::create_directories(dir_ / "data");
  }

  void TearDown() override {
    // Runs a failed test left behind must not outlive it: cancel what is
    // not over (their supervisors end them), then stop the daemon.
    if (amld_.pid() <= 0) return;
    for (const std::string& id : submitted_) {
      if (!Terminal(amld_.Get(id))) (void)amld_.Cancel(id);
    }
    for (const std::string& id : submitted_) amld_.WaitEnd(id);
    EXPECT_EQ(amld_.Stop(), 0);
  }

  void WriteConfig(const std::string& yaml) { WriteFile(dir_ / "data/amld.yaml", yaml); }

  void StartAmld() { ASSERT_TRUE(amld_.Start()) << amld_.Output(); }

  pb::RunConfig Command(const std::string& script, const std::vector<std::string>& args) {
    if (!root_) root_ = amld_.Upload(dir_ / "src");
    pb::RunConfig c;
    c.set_experiment_name("restart");
    *c.mutable_snapshot_root() = *root_;
    c.set_command("sh " + script);
    for (const std::string& a : args) c.add_arguments(a);
    return c;
  }

  std::string Submit(const pb::RunConfig& c) {
    std::string id = amld_.Submit(c);
    submitted_.push_back(id);
    return id;
  }

  TempDir dir_;
  AmldProcess amld_{dir_.path()};
  std::optional<pb::Digest> root_;
  std::vector<std::string> submitted_;
};

int Count(const pb::Run& run, pb::RunStatus::Value status) {
  int n = 0;
  for (const auto& t : run.history()) n += t.status() == status;
  return n;
}

TEST_F(RestartTest, KillNineWithTwentyQueuedAndTwoRunningLosesNothingAndRunsNothingTwice) {
  WriteConfig("max_concurrent_runs: 2\ncpus: 4\nkill_grace_seconds: 1\n");
  StartAmld();
  const fs::path ran = dir_ / "ran.txt";
  const std::string first = Submit(Command("hold.sh", {ran.string(), (dir_ / "go1").string()}));
  const std::string second = Submit(Command("hold.sh", {ran.string(), (dir_ / "go2").string()}));
  amld_.WaitStatus(first, pb::RunStatus::RUNNING);
  amld_.WaitStatus(second, pb::RunStatus::RUNNING);
  std::vector<std::string> quick;
  for (int i = 0; i < 20; ++i) quick.push_back(Submit(Command("quick.sh", {ran.string()})));
  ASSERT_TRUE(Eventually([&] { return Lines(ran).size() == 2; }, kPatience)) << ReadFile(ran);
  for (const std::string& id : quick) EXPECT_EQ(amld_.Get(id).status(), pb::RunStatus::QUEUED);

  amld_.Kill9();
  // The first run ends while no daemon runs; its supervisor records how.
  WriteFile(dir_ / "go1", "");
  ASSERT_TRUE(Eventually(
      [&] { return fs::exists(amld_.data_dir() / "runs" / first / "exit.json"); }, kPatience));

  StartAmld();
  pb::Run first_run = amld_.WaitEnd(first);
  EXPECT_EQ(first_run.status(), pb::RunStatus::COMPLETED) << first_run.error();
  EXPECT_EQ(amld_.Get(second).status(), pb::RunStatus::RUNNING);
  // Its slot is free again: queued runs start, one at a time beside "second".
  amld_.WaitEnd(quick[0]);
  WriteFile(dir_ / "go2", "");
  for (const std::string& id : submitted_) {
    pb::Run run = amld_.WaitEnd(id);
    EXPECT_EQ(run.status(), pb::RunStatus::COMPLETED) << id << ": " << run.error();
    EXPECT_EQ(Count(run, pb::RunStatus::RUNNING), 1) << run.ShortDebugString();
    EXPECT_EQ(Count(run, pb::RunStatus::PREPARING), 1) << run.ShortDebugString();
  }
  const std::vector<std::string> lines = Lines(ran);
  EXPECT_EQ(lines.size(), 22u) << ReadFile(ran);
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()),
            std::set<std::string>(submitted_.begin(), submitted_.end()));
}

TEST_F(RestartTest, CancelLeavesNothingOfARunWhoseDescendantsIgnoreSigterm) {
  WriteConfig("kill_grace_seconds: 1\n");
  StartAmld();
  const fs::path pids = dir_ / "pids";
  fs::create_directories(pids);
  pb::RunConfig c = Command("stubborn.sh", {pids.string()});
  c.set_command("trap '' TERM; sh stubborn.sh");  // the group leader too
  const std::string id = Submit(c);
  amld_.WaitStatus(id, pb::RunStatus::RUNNING);
  ASSERT_TRUE(Eventually(
      [&] { return fs::exists(pids / "ingroup.pid") && fs::exists(pids / "escaped.pid"); },
      kPatience))
      << amld_.Output();
  std::map<pid_t, std::string> started;
  for (const char* name : {"ingroup.pid", "escaped.pid"}) {
    pid_t pid = std::stoi(ReadFile(pids / name));
    std::optional<std::string> start = ProcessStartTime(pid);
    ASSERT_TRUE(start.has_value()) << name << " " << pid << " is not running";
    started[pid] = *start;
  }

  ASSERT_TRUE(amld_.Cancel(id).ok());
  pb::Run run = amld_.WaitEnd(id);
  EXPECT_EQ(run.status(), pb::RunStatus::CANCELED) << run.error();
  EXPECT_EQ(run.error(), "canceled: test");
  // SIGTERM changed nothing; SIGKILL after the grace period ended them.
  EXPECT_THAT(ReadFile(amld_.data_dir() / "runs" / id / "system_logs/amld-shim.log"),
              HasSubstr("grace period over: sending SIGKILL"));
  for (const auto& [pid, start] : started) {
    EXPECT_NE(ProcessStartTime(pid), start) << "process " << pid << " outlived the cancel";
  }
}

TEST_F(RestartTest, ADeadlineThatPassesWhileTheDaemonIsDownEndsTheRunAsTimedOut) {
  WriteConfig("kill_grace_seconds: 1\n");
  StartAmld();
  pb::RunConfig c = Command("hold.sh", {(dir_ / "ran.txt").string(), (dir_ / "never").string()});
  c.set_max_run_duration_seconds(3);
  const std::string id = Submit(c);
  amld_.WaitStatus(id, pb::RunStatus::RUNNING);
  amld_.Kill9();
  const fs::path exit_file = amld_.data_dir() / "runs" / id / "exit.json";
  ASSERT_TRUE(Eventually([&] { return fs::exists(exit_file); }, kPatience));
  EXPECT_THAT(ReadFile(exit_file), HasSubstr("\"timed_out\":true"));

  StartAmld();
  pb::Run run = amld_.WaitEnd(id);
  EXPECT_EQ(run.status(), pb::RunStatus::CANCELED);  // as azureml
  EXPECT_EQ(run.error(), "timed out after 3 s");
  EXPECT_EQ(Count(run, pb::RunStatus::RUNNING), 1);
}

TEST_F(RestartTest, ConcurrentRunsNeverShareAGpuAndKeepTheirsAcrossARestart) {
  WriteConfig("max_concurrent_runs: 3\ncpus: 8\ngpus: [0, 1, 2]\nkill_grace_seconds: 1\n");
  StartAmld();
  const fs::path log = dir_ / "gpus.txt";
  const fs::path release = dir_ / "release";
  fs::create_directories(release);
  auto asking = [&](int gpus) {
    pb::RunConfig c = Command("gpu.sh", {log.string(), release.string()});
    c.mutable_resources()->set_gpus(gpus);
    return c;
  };
  const std::string one = Submit(asking(1));
  const std::string two = Submit(asking(2));
  const std::string three = Submit(asking(1));
  const std::string none = Submit(asking(0));
  amld_.WaitStatus(one, pb::RunStatus::RUNNING);
  amld_.WaitStatus(two, pb::RunStatus::RUNNING);
  ASSERT_TRUE(Eventually([&] { return Lines(log).size() == 2; }, kPatience));

  // A restart forgets no GPU: all three are still taken afterwards.
  amld_.Kill9();
  StartAmld();
  pb::DaemonInfo info;
  ASSERT_TRUE(amld_.Info(&info).ok());
  EXPECT_THAT(info.gpus(), ElementsAre(0, 1, 2));
  EXPECT_THAT(info.free_gpus(), IsEmpty());
  EXPECT_EQ(info.cpus(), 8);
  EXPECT_EQ(info.free_cpus(), 6);
  EXPECT_EQ(amld_.Get(three).status(), pb::RunStatus::QUEUED);

  WriteFile(release / ("release-" + one), "");
  amld_.WaitStatus(three, pb::RunStatus::RUNNING);
  amld_.WaitStatus(none, pb::RunStatus::RUNNING);
  for (const std::string& id : {two, three, none}) WriteFile(release / ("release-" + id), "");
  for (const std::string& id : submitted_) {
    EXPECT_EQ(amld_.WaitEnd(id).status(), pb::RunStatus::COMPLETED);
  }

  // Replay the log: the devices of runs running at the same time never meet.
  std::map<std::string, std::set<std::string>> running;
  std::map<std::string, std::string> seen;
  for (const std::string& line : Lines(log)) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    ASSERT_GE(words.size(), 2u) << line;
    if (words[0] == "end") {
      running.erase(words[1]);
      continue;
    }
    const std::string devices = words.size() > 2 ? words[2] : "";
    seen[words[1]] = devices;
    std::set<std::string> mine;
    for (absl::string_view d : absl::StrSplit(devices, ',', absl::SkipEmpty())) {
      mine.insert(std::string(d));
    }
    for (const auto& [other, theirs] : running) {
      for (const std::string& d : mine) {
        EXPECT_FALSE(theirs.contains(d)) << words[1] << " and " << other << " share GPU " << d;
      }
    }
    running[words[1]] = mine;
  }
  EXPECT_EQ(seen[one], "0");
  EXPECT_EQ(seen[two], "1,2");
  EXPECT_EQ(seen[three], "0");
  EXPECT_EQ(seen[none], "");  // set and empty: no GPU at all
  for (const std::string& id : {one, two, three, none}) {
    EXPECT_EQ(absl::StrJoin(amld_.Get(id).assigned_gpus(), ","), seen[id]) << id;
  }
}

TEST_F(RestartTest, ARequestLargerThanTheMachineIsRefusedSayingItsCapacity) {
  WriteConfig("cpus: 2\ngpus: [3]\n");
  StartAmld();
  pb::RunConfig c = Command("quick.sh", {(dir_ / "ran.txt").string()});
  c.mutable_resources()->set_gpus(2);
  pb::Run run;
  grpc::Status s = amld_.TrySubmit(c, &run);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("asks for 2 GPUs but the local target has 1 (ids 3)"));
}

TEST_F(RestartTest, AnInvalidConfigFileStopsTheDaemonSayingWhereAndWhat) {
  const fs::path config = dir_ / "data/amld.yaml";
  WriteConfig("max_concurrent_runs: 2\ngpus: [0, 1, 0]\n");
  EXPECT_EQ(amld_.RunToExit({}), 1);
  EXPECT_THAT(amld_.Output(),
              HasSubstr(absl::StrCat("amld: ", config.string(),
                                     ":2:14: GPU id 0 is listed twice; each GPU once")));
  WriteConfig("cpus: 4\nslots: 2\n");
  EXPECT_EQ(amld_.RunToExit({}), 1);
  EXPECT_THAT(amld_.Output(), HasSubstr(config.string() + ":2:1: unknown key \"slots\""));
  WriteConfig("kill_grace_seconds: -1\n");
  EXPECT_EQ(amld_.RunToExit({}), 1);
  EXPECT_THAT(amld_.Output(), HasSubstr(":1:21: kill_grace_seconds must be 0 or more, got -1"));
  EXPECT_EQ(amld_.RunToExit({"--config", (dir_ / "missing.yaml").string()}), 1);
  EXPECT_THAT(amld_.Output(), HasSubstr("missing.yaml does not exist"));
  // Flags override the file: a bad --gpus is refused too, a good one wins.
  WriteConfig("gpus: [0]\nmax_concurrent_runs: 1\n");
  EXPECT_EQ(amld_.RunToExit({"--gpus", "1,1"}), 1);
  EXPECT_THAT(amld_.Output(), HasSubstr("--gpus: GPU id 1 is listed twice"));
  ASSERT_TRUE(amld_.Start({"--gpus", "4,5", "--max-concurrent-runs", "3"})) << amld_.Output();
  pb::DaemonInfo info;
  ASSERT_TRUE(amld_.Info(&info).ok());
  EXPECT_THAT(info.gpus(), ElementsAre(4, 5));
  EXPECT_EQ(info.max_concurrent_runs(), 3);
  EXPECT_THAT(amld_.Output(), HasSubstr("config " + config.string()));
}

}  // namespace
}  // namespace amld::daemon
