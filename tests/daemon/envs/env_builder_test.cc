#include "daemon/envs/env_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::testing::Eventually;
using amld::testing::FakeCommandRunner;
using amld::testing::ReadFile;
using amld::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

EnvironmentSpec Spec(std::vector<std::string> requirements) {
  EnvironmentSpec spec;
  spec.pip_requirements = std::move(requirements);
  return spec;
}

// What the callbacks were given, by run.
struct Results {
  absl::Mutex mu;
  std::map<std::string, absl::StatusOr<fs::path>> by_run;

  EnvironmentBuilder::Done For(const std::string& run) {
    return [this, run](absl::StatusOr<fs::path> prefix) {
      absl::MutexLock lock(&mu);
      by_run.emplace(run, std::move(prefix));
    };
  }
  size_t size() {
    absl::MutexLock lock(&mu);
    return by_run.size();
  }
  absl::StatusOr<fs::path> Of(const std::string& run) {
    absl::MutexLock lock(&mu);
    return by_run.at(run);
  }
};

class EnvBuilderTest : public ::testing::Test {
 protected:
  EnvBuilderTest() {
    options_.root = dir_ / "envs";
    fs::create_directories(dir_ / "runs");
  }

  std::unique_ptr<EnvironmentBuilder> StartBuilder() {
    auto b = std::make_unique<EnvironmentBuilder>(options_, &fake_);
    EXPECT_TRUE(b->Start().ok());
    return b;
  }

  BuildRequest Request(const std::string& run) {
    fs::create_directories(dir_ / "runs" / run / "system_logs");
    return BuildRequest{run, dir_ / "runs" / run / "std_log.txt",
                        dir_ / "runs" / run / "system_logs" / "environment_build.log",
                        std::nullopt};
  }

  // Ends the running `python -m venv DIR` as the real one would: DIR/bin/python exists.
  void FinishVenv() {
    auto venv = fake_.Started("-m venv");
    ASSERT_NE(venv, nullptr);
    const fs::path folder = venv->command().argv.back();
    fs::create_directories(folder / "bin");
    amld::testing::WriteFile(folder / "bin" / "python", "");
    venv->Write("made a venv\n");
    venv->End();
  }

  std::vector<std::string> BuildFolders() {
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(options_.root)) {
      if (e.path().filename().string().rfind(".build-", 0) == 0) {
        found.push_back(e.path().filename().string());
      }
    }
    return found;
  }

  TempDir dir_;
  EnvironmentOptions options_;
  FakeCommandRunner fake_;
};

TEST_F(EnvBuilderTest, RunsAskingForOneNewSpecBuildItOnce) {
  auto builder = StartBuilder();
  Results results;
  const EnvironmentSpec spec = Spec({"alpha"});
  builder->Acquire(spec, Request("r1"), results.For("r1"));
  ASSERT_NE(fake_.Started("-m venv"), nullptr);
  builder->Acquire(spec, Request("r2"), results.For("r2"));
  builder->Acquire(spec, Request("r3"), results.For("r3"));
  FinishVenv();
  auto pip = fake_.Started("-m pip install");
  ASSERT_NE(pip, nullptr);
  pip->Write("Successfully installed alpha-1.0\n");
  pip->End();
  ASSERT_TRUE(Eventually([&] { return results.size() == 3; }));
  EXPECT_EQ(builder->builds_started(), 1);
  EXPECT_EQ(fake_.CallsMatching("-m venv"), 1);
  EXPECT_EQ(fake_.CallsMatching("-m pip install"), 1);
  const absl::StatusOr<fs::path> prefix = results.Of("r1");
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(*results.Of("r2"), *prefix);
  EXPECT_EQ(*results.Of("r3"), *prefix);
  EXPECT_EQ(*builder->Built(SpecDigest(spec)), *prefix);
  EXPECT_EQ(ReadFile(*prefix / "amld-environment.txt"), CanonicalText(spec));
  EXPECT_EQ(ReadFile(*prefix / "amld-requirements.txt"), "alpha\n");
  // The builder's run has the log, live in its std log and kept in
  // system_logs/; the others say whose build they waited for.
  const std::string log = ReadFile(dir_ / "runs/r1/std_log.txt");
  EXPECT_THAT(log, HasSubstr("amld: building environment " + ShortDigest(SpecDigest(spec))));
  EXPECT_THAT(log, HasSubstr("made a venv\n"));
  EXPECT_THAT(log, HasSubstr("Successfully installed alpha-1.0"));
  EXPECT_EQ(ReadFile(dir_ / "runs/r1/system_logs/environment_build.log"), log);
  EXPECT_FALSE(fs::exists(dir_ / "runs/r2/system_logs/environment_build.log"));
  EXPECT_THAT(ReadFile(dir_ / "runs/r2/std_log.txt"), HasSubstr("being built for run r1"));
  EXPECT_THAT(ReadFile(dir_ / "runs/r3/std_log.txt"), HasSubstr("is built (by run r1)"));

  // Built: the next run gets it at once, with no command.
  Results later;
  builder->Acquire(spec, Request("r4"), later.For("r4"));
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(*later.Of("r4"), *prefix);
  EXPECT_EQ(fake_.Calls().size(), 2u);
  EXPECT_THAT(ReadFile(dir_ / "runs/r4/std_log.txt"), HasSubstr("(built before)"));
}

TEST_F(EnvBuilderTest, AFailedBuildLeavesNothingAndTheNextRunRetries) {
  auto builder = StartBuilder();
  Results results;
  const EnvironmentSpec spec = Spec({"nope"});
  builder->Acquire(spec, Request("r1"), results.For("r1"));
  builder->Acquire(spec, Request("r2"), results.For("r2"));
  FinishVenv();
  auto pip = fake_.Started("-m pip install");
  ASSERT_NE(pip, nullptr);
  pip->End({1, 0, "", "Looking in links: /w\nERROR: No matching distribution found for nope\n"});
  ASSERT_TRUE(Eventually([&] { return results.size() == 2; }));
  for (const char* run : {"r1", "r2"}) {
    absl::StatusOr<fs::path> r = results.Of(run);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("pip install failed (exit code 1):\nLooking in links: /w\nERROR: No "
                          "matching distribution found for nope"));
  }
  EXPECT_THAT(BuildFolders(), IsEmpty());
  EXPECT_FALSE(builder->Built(SpecDigest(spec)).ok());
  EXPECT_THAT(ReadFile(dir_ / "runs/r1/std_log.txt"), HasSubstr("No matching distribution"));
  EXPECT_THAT(ReadFile(dir_ / "runs/r2/std_log.txt"), HasSubstr("could not be built (run r1)"));

  Results again;
  builder->Acquire(spec, Request("r3"), again.For("r3"));
  FinishVenv();
  auto pip2 = fake_.Started("-m pip install");
  ASSERT_NE(pip2, nullptr);
  pip2->End();
  ASSERT_TRUE(Eventually([&] { return again.size() == 1; }));
  EXPECT_TRUE(again.Of("r3").ok()) << again.Of("r3").status();
  EXPECT_EQ(builder->builds_started(), 2);
}

TEST_F(EnvBuilderTest, PackageIndexesComeFromTheConfigOnly) {
  options_.no_index = true;
  options_.find_links = {"/srv/wheels"};
  options_.extra_index_urls = {"https://b/simple"};
  auto builder = StartBuilder();
  Results results;
  builder->Acquire(Spec({"alpha"}), Request("r1"), results.For("r1"));
  FinishVenv();
  auto pip = fake_.Started("-m pip install");
  ASSERT_NE(pip, nullptr);
  const std::vector<std::string>& argv = pip->command().argv;
  const std::vector<std::string> expected_tail = {
      "--no-index", "--extra-index-url", "https://b/simple", "--find-links", "/srv/wheels", "-r"};
  EXPECT_TRUE(std::search(argv.begin(), argv.end(), expected_tail.begin(), expected_tail.end()) !=
              argv.end())
      << absl::StrJoin(argv, " ");
  pip->End();
  ASSERT_TRUE(Eventually([&] { return results.size() == 1; }));

  // None configured: pip's own configuration (no index flag at all).
  options_ = EnvironmentOptions{};
  options_.root = dir_ / "envs2";
  FakeCommandRunner plain;
  EnvironmentBuilder other(options_, &plain);
  ASSERT_TRUE(other.Start().ok());
  Results more;
  other.Acquire(Spec({"beta"}), Request("r2"), more.For("r2"));
  auto venv = plain.Started("-m venv");
  ASSERT_NE(venv, nullptr);
  fs::create_directories(fs::path(venv->command().argv.back()) / "bin");
  venv->End();
  auto pip2 = plain.Started("-m pip install");
  ASSERT_NE(pip2, nullptr);
  EXPECT_THAT(absl::StrJoin(pip2->command().argv, " "), ::testing::Not(HasSubstr("index")));
  pip2->End();
  ASSERT_TRUE(Eventually([&] { return more.size() == 1; }));
}

TEST_F(EnvBuilderTest, StartRemovesWhatAnInterruptedBuildLeft) {
  fs::create_directories(options_.root / ".build-abc-1-1" / "bin");
  fs::create_directories(options_.root / ".build-def-1-2" / "bin");
  amld::testing::WriteFile(options_.root / ".build-def-1-2" / "bin" / "python", "");
  fs::create_symlink(".build-def-1-2", options_.root / std::string(64, 'd'));
  fs::create_symlink(".build-abc-1-1", options_.root / ".link-.build-abc-1-1");
  auto builder = StartBuilder();
  EXPECT_THAT(BuildFolders(), ElementsAre(".build-def-1-2"));
  EXPECT_FALSE(fs::is_symlink(options_.root / ".link-.build-abc-1-1"));
  EXPECT_TRUE(builder->Built(std::string(64, 'd')).ok());
}

TEST_F(EnvBuilderTest, ShutdownStopsARunningBuildAndRemovesIt) {
  auto builder = StartBuilder();
  Results results;
  builder->Acquire(Spec({"alpha"}), Request("r1"), results.For("r1"));
  auto venv = fake_.Started("-m venv");
  ASSERT_NE(venv, nullptr);
  builder.reset();
  EXPECT_TRUE(venv->stopped());
  EXPECT_EQ(results.size(), 0u);  // prepared again by the next daemon
  EXPECT_THAT(BuildFolders(), IsEmpty());
}

// Builds `spec` for `run` with the fake venv and pip (the builder's
// worker is otherwise idle), until `results` has the run's prefix.
void BuildOne(EnvironmentBuilder& builder, FakeCommandRunner& fake, const EnvironmentSpec& spec,
              BuildRequest request, Results& results) {
  const int before = fake.CallsMatching("-m venv");
  const size_t answered = results.size();
  const std::string run = request.run_id;
  builder.Acquire(spec, std::move(request), results.For(run));
  ASSERT_TRUE(Eventually([&] { return fake.CallsMatching("-m venv") == before + 1; }));
  auto venv = fake.Started("-m venv");
  const fs::path folder = venv->command().argv.back();
  fs::create_directories(folder / "bin");
  amld::testing::WriteFile(folder / "bin" / "python", std::string(1000, 'x'));
  venv->End();
  ASSERT_TRUE(Eventually([&] { return fake.CallsMatching("-m pip install") == before + 1; }));
  fake.Started("-m pip install")->End();
  ASSERT_TRUE(Eventually([&] { return results.size() == answered + 1; }));
  ASSERT_TRUE(results.Of(run).ok()) << results.Of(run).status();
}

TEST_F(EnvBuilderTest, PruneRemovesOnlyWhatNoRunHolds) {
  options_.cache_budget = 0;  // no budget: only Prune removes
  auto builder = StartBuilder();
  Results results;
  BuildOne(*builder, fake_, Spec({"alpha"}), Request("r1"), results);
  BuildOne(*builder, fake_, Spec({"beta"}), Request("r2"), results);
  const std::string alpha = SpecDigest(Spec({"alpha"}));
  const std::string beta = SpecDigest(Spec({"beta"}));
  CacheUsage usage = builder->Usage();
  EXPECT_EQ(usage.count, 2);
  EXPECT_EQ(usage.in_use, 2);
  EXPECT_GT(usage.bytes, 2000);  // bin/python and the spec's files, each
  EXPECT_THAT(builder->Prune(), IsEmpty());  // both runs still use theirs

  builder->Release("r1");
  const fs::path alpha_folder = *builder->Built(alpha);
  const std::vector<CachedEnvironment> removed = builder->Prune();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].digest, alpha);
  EXPECT_EQ(removed[0].folder, alpha_folder);
  EXPECT_GT(removed[0].bytes, 1000);
  EXPECT_FALSE(fs::exists(alpha_folder));
  EXPECT_FALSE(builder->Built(alpha).ok());
  EXPECT_TRUE(builder->Built(beta).ok());
  usage = builder->Usage();
  EXPECT_EQ(usage.count, 1);
  EXPECT_EQ(usage.in_use, 1);

  // Held again after a restart (Hold), a run's environment stays.
  auto restarted = std::make_unique<EnvironmentBuilder>(options_, &fake_);
  builder.reset();
  ASSERT_TRUE(restarted->Start().ok());
  restarted->Hold(beta, "r2");
  EXPECT_THAT(restarted->Prune(), IsEmpty());
  restarted->Release("r2");
  EXPECT_EQ(restarted->Prune().size(), 1u);
  EXPECT_EQ(restarted->Usage().count, 0);
}

TEST_F(EnvBuilderTest, OverTheBudgetTheLeastRecentlyUsedUnheldGoFirst) {
  options_.cache_budget = 1;  // any environment no run holds is over it
  auto builder = StartBuilder();
  Results results;
  BuildOne(*builder, fake_, Spec({"alpha"}), Request("r1"), results);
  BuildOne(*builder, fake_, Spec({"beta"}), Request("r2"), results);
  const std::string alpha = SpecDigest(Spec({"alpha"}));
  const std::string beta = SpecDigest(Spec({"beta"}));
  // Over the budget once beta is free: the trim passes alpha (older, but
  // held by r1) and removes beta.
  builder->Release("r2");
  ASSERT_TRUE(Eventually([&] { return !builder->Built(beta).ok(); }));
  EXPECT_TRUE(builder->Built(alpha).ok());
  EXPECT_EQ(builder->Usage().count, 1);
  // A later run of the evicted spec builds it again.
  BuildOne(*builder, fake_, Spec({"beta"}), Request("r3"), results);
  EXPECT_EQ(builder->builds_started(), 3);
}

// System mode, with real accounts of every Debian system (daemon: uid 1,
// bin: uid 2, nobody: 65534) as the users and the build account: the
// builder chowns and takes their file rights, so these need root.
class SystemModeEnvBuilderTest : public EnvBuilderTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown, the users' file rights)";
    for (uid_t uid : {kUserA, kUserB, kNobody}) {
      if (!LookupAccount(uid).ok()) GTEST_SKIP() << "this machine has no uid " << uid;
    }
    // The users pass through to their caches, as through /var/lib/amld.
    fs::permissions(dir_.path(), fs::perms(0711));
    options_.per_user = true;
    options_.build_user = "";  // per test
  }

  // Ends the latest `python -m venv DIR` as the real one would, as the
  // account it ran as: DIR/bin/python, theirs.
  void FinishVenvAsItsAccount() {
    auto venv = fake_.Started("-m venv");
    ASSERT_NE(venv, nullptr);
    const fs::path folder = venv->command().argv.back();
    ASSERT_TRUE(venv->command().run_as.has_value());
    const RunAs& as = *venv->command().run_as;
    // An interpreter they may run (the daemon's PATH may begin with root's
    // own folders, like pyenv's shims under /root).
    EXPECT_TRUE(CheckAccountMay(as, venv->command().argv[0], X_OK).ok())
        << venv->command().argv[0];
    fs::create_directories(folder / "bin");
    amld::testing::WriteFile(folder / "bin" / "python", "#!/bin/sh\n", 0700);
    for (const fs::path& p : {folder, folder / "bin", folder / "bin" / "python"}) {
      ASSERT_EQ(::lchown(p.c_str(), as.uid, as.gid), 0) << p;
    }
    venv->End();
    auto pip = fake_.Started("-m pip install");
    ASSERT_NE(pip, nullptr);
    pip->End();
  }

  BuildRequest RequestOf(const std::string& run, uid_t user) {
    BuildRequest request = Request(run);
    request.user = user;
    return request;
  }

  static struct stat Stat(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st;
  }

  static constexpr uid_t kUserA = 1;
  static constexpr uid_t kUserB = 2;
  static constexpr uid_t kNobody = 65534;
};

TEST_F(SystemModeEnvBuilderTest, EachUserBuildsTheirOwnAsThemselvesInTheirOwnCache) {
  auto builder = StartBuilder();
  Results results;
  const EnvironmentSpec spec = Spec({"alpha"});
  const std::string digest = SpecDigest(spec);
  builder->Acquire(spec, RequestOf("a1", kUserA), results.For("a1"));
  builder->Acquire(spec, RequestOf("b1", kUserB), results.For("b1"));
  FinishVenvAsItsAccount();
  FinishVenvAsItsAccount();
  ASSERT_TRUE(Eventually([&] { return results.size() == 2; }));
  // Two users, one spec: two builds, each run as its user.
  EXPECT_EQ(builder->builds_started(), 2);
  EXPECT_THAT(fake_.AccountsOf("-m venv"), ElementsAre(kUserA, kUserB));
  EXPECT_THAT(fake_.AccountsOf("-m pip install"), ElementsAre(kUserA, kUserB));
  const absl::StatusOr<fs::path> a = results.Of("a1");
  const absl::StatusOr<fs::path> b = results.Of("b1");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->parent_path(), options_.root / "users" / "1");
  EXPECT_EQ(b->parent_path(), options_.root / "users" / "2");
  EXPECT_EQ(*builder->Built(spec, kUserA), *a);
  EXPECT_EQ(*builder->Built(spec, kUserB), *b);
  EXPECT_FALSE(builder->Built(digest).ok());  // nothing in the shared cache
  // users/ lets each through to their own folder, which is theirs alone;
  // what the daemon wrote there is theirs too.
  struct stat users = Stat(options_.root / "users");
  EXPECT_EQ(users.st_uid, 0u);
  EXPECT_EQ(users.st_mode & 07777, 0711u);
  for (auto [uid, prefix] : {std::pair{kUserA, *a}, std::pair{kUserB, *b}}) {
    struct stat mine = Stat(prefix.parent_path());
    EXPECT_EQ(mine.st_uid, uid);
    EXPECT_EQ(mine.st_mode & 07777, 0700u);
    for (const char* file : {"amld-requirements.txt", "amld-environment.txt", "amld-size",
                             "amld-last-use"}) {
      EXPECT_EQ(Stat(prefix / file).st_uid, uid) << file;
    }
    EXPECT_EQ(Stat(prefix.parent_path() / digest).st_uid, uid);  // the link
  }
  // Usage and Prune are per cache: A's release frees only A's.
  EXPECT_EQ(builder->Usage(kUserA).count, 1);
  EXPECT_EQ(builder->Usage(std::nullopt).count, 2);
  builder->Release("a1");
  EXPECT_THAT(builder->Prune(kUserB), IsEmpty());  // B's run holds B's
  const std::vector<CachedEnvironment> removed = builder->Prune(kUserA);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].folder, *a);
  EXPECT_FALSE(fs::exists(*a));
  EXPECT_TRUE(builder->Built(spec, kUserB).ok());
}

TEST_F(SystemModeEnvBuilderTest, AHashPinnedSpecIsBuiltOnceInTheSharedCacheByTheBuildAccount) {
  options_.build_user = "nobody";
  auto builder = StartBuilder();
  Results results;
  const EnvironmentSpec spec = Spec({"alpha==1.0 --hash=sha256:0123abcd"});
  ASSERT_TRUE(DeterminesItsResult(spec));
  builder->Acquire(spec, RequestOf("a1", kUserA), results.For("a1"));
  builder->Acquire(spec, RequestOf("b1", kUserB), results.For("b1"));
  FinishVenvAsItsAccount();
  ASSERT_TRUE(Eventually([&] { return results.size() == 2; }));
  EXPECT_EQ(builder->builds_started(), 1);
  EXPECT_THAT(fake_.AccountsOf("-m venv"), ElementsAre(kNobody));
  EXPECT_THAT(fake_.AccountsOf("-m pip install"), ElementsAre(kNobody));
  EXPECT_EQ(fake_.CallsMatching("--no-cache-dir"), 1);  // nobody has no HOME for pip's cache
  const absl::StatusOr<fs::path> a = results.Of("a1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*results.Of("b1"), *a);
  EXPECT_EQ(a->parent_path(), options_.root);
  EXPECT_EQ(*builder->Built(SpecDigest(spec)), *a);
  EXPECT_FALSE(fs::exists(options_.root / "users" / "1"));
  // Sealed: root's and readable by everyone, writable by no one else —
  // the build account included.
  for (const fs::path& p : {*a, *a / "bin", *a / "bin" / "python", *a / "amld-requirements.txt",
                            *a / "amld-environment.txt"}) {
    struct stat st = Stat(p);
    EXPECT_EQ(st.st_uid, 0u) << p;
    EXPECT_EQ(st.st_mode & 0022, 0u) << p;
    EXPECT_EQ(st.st_mode & 0044, 0044u) << p;
  }
  EXPECT_EQ(Stat(*a).st_mode & 07777, 0755u);
  EXPECT_EQ(Stat(*a / "bin" / "python").st_mode & 07777, 0755u);
}

TEST_F(SystemModeEnvBuilderTest, WithoutTheBuildAccountAHashPinnedSpecStaysInTheUsersCache) {
  options_.build_user = "amld-no-such-account";
  auto builder = StartBuilder();
  Results results;
  const EnvironmentSpec spec = Spec({"alpha==1.0 --hash=sha256:0123abcd"});
  builder->Acquire(spec, RequestOf("a1", kUserA), results.For("a1"));
  FinishVenvAsItsAccount();
  ASSERT_TRUE(Eventually([&] { return results.size() == 1; }));
  ASSERT_TRUE(results.Of("a1").ok()) << results.Of("a1").status();
  EXPECT_EQ(results.Of("a1")->parent_path(), options_.root / "users" / "1");
  EXPECT_THAT(fake_.AccountsOf("-m venv"), ElementsAre(kUserA));
}

TEST_F(SystemModeEnvBuilderTest, ACondaToolTheUserCannotRunIsRefusedAtSubmit) {
  // A conda tool in a folder of root's alone.
  fs::create_directories(dir_ / "root-only");
  fs::permissions(dir_ / "root-only", fs::perms(0700));
  amld::testing::WriteFile(dir_ / "root-only" / "micromamba", "#!/bin/sh\n", 0755);
  options_.conda_path = (dir_ / "root-only" / "micromamba").string();
  auto builder = StartBuilder();
  amld::v1::Environment env;
  env.add_conda_packages("numpy");
  const absl::StatusOr<EnvironmentSpec> spec = builder->Check(env, kUserA);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("conda packages are built as you, with environments.conda_path " +
                        options_.conda_path + ", which you cannot run: daemon cannot reach"));
  EXPECT_TRUE(builder->Check(env, 0).ok());  // root can
  EXPECT_TRUE(builder->Check(env).ok());     // the run's own later look: no account
}

TEST_F(SystemModeEnvBuilderTest, ARequestWithoutItsUserIsRefused) {
  auto builder = StartBuilder();
  Results results;
  builder->Acquire(Spec({"alpha"}), Request("r1"), results.For("r1"));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results.Of("r1").status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(fake_.Calls(), IsEmpty());
}

TEST(ActivateEnvironmentTest, TheScriptRunsWithTheEnvironmentsPython) {
  std::vector<std::string> argv = {"python3", "train.py", "--lr", "0.1"};
  std::vector<std::pair<std::string, std::string>> env = {
      {"HOME", "/home/u"}, {"PATH", "/usr/bin:/bin"}, {"PYTHONHOME", "/x"}};
  ActivateEnvironment("/data/envs/.build-1", true, &argv, &env);
  EXPECT_THAT(argv, ElementsAre("/data/envs/.build-1/bin/python", "train.py", "--lr", "0.1"));
  EXPECT_THAT(
      env, ElementsAre(
               std::pair<std::string, std::string>{"HOME", "/home/u"},
               std::pair<std::string, std::string>{"PATH", "/data/envs/.build-1/bin:/usr/bin:/bin"},
               std::pair<std::string, std::string>{"VIRTUAL_ENV", "/data/envs/.build-1"}));
  std::vector<std::string> command = {"/bin/sh", "-c", "python train.py"};
  std::vector<std::pair<std::string, std::string>> none;
  ActivateEnvironment("/e", false, &command, &none);
  EXPECT_EQ(command[0], "/bin/sh");
  EXPECT_EQ(none.front().second, "/e/bin:/usr/local/bin:/usr/bin:/bin");
}

}  // namespace
}  // namespace amld::daemon
