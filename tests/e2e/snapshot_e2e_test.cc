// End-to-end tests of snapshots: the real `aml` against a real `amld`
// (build/bin) on a temp data dir, socket and cache dir per test.
//   - a watched folder: edited right before the submit, the run sees the
//     edit, and the client walks and uploads nothing; it survives a daemon
//     restart; unwatching makes submits walk again;
//   - the client's stat cache: an unchanged resubmit reads no file, one
//     changed file is the only one read;
//   - `aml snapshot explain` names the rule and file that left a path out;
//   - limits: going over fails, listing the largest files;
//   - the daemon's own read of the folder: the upload's digest, and the
//     upload when the daemon will not read it.
// Nothing asserts how long something took.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/subprocess.h"
#include "tests/e2e/aml_e2e_fixture.h"

namespace {

using namespace amld::e2e;  // NOLINT: the shared e2e paths and helpers
using amld::testing::WriteFile;

class SnapshotE2eTest : public AmlDaemonTest {
 protected:
  void SetUp() override {
    SetUpWorkspace("amld-se-");
    // These test the client's walk, stat cache and upload; the daemon's own
    // read of the folder is LocalIngestE2eTest's.
    upload_snapshots_ = true;
    WriteFile(project_ / "train.py", "print(open('data.txt').read().strip())\n");
    WriteFile(project_ / "data.txt", "version 1\n");
    WriteFile(project_ / "lib" / "util.py", "X = 1\n");
  }

  // `aml run submit --wait` of train.py; the JSON, with the run's output in
  // `stderr` (where --output json sends it).
  json SubmitAndWait(std::string* output = nullptr) {
    auto r = Aml({"--output", "json", "run", "submit", "--wait", "-s", project_.string(),
                  "--interpreter", kPython, "train.py"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    if (output != nullptr) *output = r.err;
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << Describe(r);
    return j;
  }
};

TEST_F(SnapshotE2eTest, WatchedFolderSubmitSeesTheLatestEditAndUploadsNothing) {
  StartDaemon();
  auto watch = Aml({"snapshot", "watch", project_.string()});
  ASSERT_EQ(watch.exit_code, 0) << Describe(watch);
  EXPECT_TRUE(absl::StrContains(watch.out, "watching")) << Describe(watch);
  json list = AmlJson({"snapshot", "list"});
  ASSERT_EQ(list["roots"].size(), 1u) << list.dump();
  EXPECT_EQ(list["roots"][0]["state"], "WATCHING");
  EXPECT_EQ(list["roots"][0]["file_count"], 3);  // numbers as numbers

  // Edited right before the submit: no settle time passes.
  WriteFile(project_ / "data.txt", "version 2 of the data\n");
  std::string output;
  json j = SubmitAndWait(&output);
  EXPECT_EQ(j["snapshot_source"]["kind"], "watched_root") << j.dump(2);
  EXPECT_EQ(j["upload"]["files_uploaded"], 0);
  EXPECT_EQ(j["upload"]["bytes_uploaded"], 0);
  EXPECT_EQ(j["upload"]["files_total"], 3);
  EXPECT_EQ(j["run"]["status"], "COMPLETED") << j.dump(2);
  EXPECT_TRUE(absl::StrContains(output, "version 2 of the data")) << output;
  const std::string watched_root = j["snapshot_root"];

  // The daemon keeps watching across a restart (a full rescan at start).
  ASSERT_EQ(Aml({"daemon", "stop"}).exit_code, 0);
  started_ = false;
  WriteFile(project_ / "lib" / "util.py", "X = 2\n");
  StartDaemon();
  list = AmlJson({"snapshot", "list"});
  ASSERT_EQ(list["roots"].size(), 1u) << list.dump();
  EXPECT_EQ(list["roots"][0]["path"], fs::canonical(project_).string());
  j = SubmitAndWait();
  EXPECT_EQ(j["snapshot_source"]["kind"], "watched_root") << j.dump(2);
  EXPECT_NE(j["snapshot_root"], watched_root) << "the change made while amld was down is missing";
  list = AmlJson({"snapshot", "list"});
  EXPECT_EQ(list["roots"][0]["last_rescan"]["reason"], "daemon restart") << list.dump(2);

  // The watched tree is the one a walk gives.
  auto unwatch = Aml({"snapshot", "unwatch", project_.string()});
  ASSERT_EQ(unwatch.exit_code, 0) << Describe(unwatch);
  EXPECT_TRUE(AmlJson({"snapshot", "list"})["roots"].empty());
  json walked = SubmitAndWait();
  EXPECT_EQ(walked["snapshot_source"]["kind"], "walk") << walked.dump(2);
  EXPECT_EQ(walked["snapshot_root"], j["snapshot_root"]);
  EXPECT_EQ(Aml({"snapshot", "unwatch", project_.string()}).exit_code, 1);
}

TEST_F(SnapshotE2eTest, StatCacheSparesReadingUnchangedFiles) {
  StartDaemon();
  for (int i = 0; i < 20; ++i) {
    WriteFile(project_ / "pkg" / absl::StrCat("m", i, ".py"), absl::StrCat("V = ", i, "\n"));
  }
  // Files changed within the last second are never trusted to the cache
  // (racy git); let these age past that. A real wait, and the behaviour
  // under test: the rule reads ctime, which cannot be set back, against the
  // real clock of the `aml` process.
  absl::SleepFor(absl::Milliseconds(1500));
  json first = SubmitAndWait();
  EXPECT_EQ(first["snapshot_source"]["kind"], "walk");
  EXPECT_EQ(first["snapshot_source"]["files_hashed"], 23) << first.dump(2);
  json second = SubmitAndWait();
  EXPECT_EQ(second["snapshot_source"]["files_hashed"], 0) << second.dump(2);
  EXPECT_EQ(second["snapshot_source"]["trusted_earlier_upload"], true);
  EXPECT_EQ(second["snapshot_source"]["stat_cache_hits"], 23);
  EXPECT_EQ(second["upload"]["bytes_uploaded"], 0);
  EXPECT_EQ(second["snapshot_root"], first["snapshot_root"]);
  WriteFile(project_ / "pkg" / "m7.py", "V = 'seven'\n");
  json third = SubmitAndWait();
  EXPECT_EQ(third["snapshot_source"]["files_hashed"], 1) << third.dump(2);
  EXPECT_EQ(third["upload"]["files_uploaded"], 1);
  // A damaged cache file is ignored, not trusted.
  for (const auto& e : fs::directory_iterator(dir_ / "cache" / "amld")) {
    WriteFile(e.path(), "garbage");
  }
  std::string output;
  auto r = Aml({"--output", "json", "run", "submit", "-s", project_.string(), "--interpreter",
                kPython, "train.py"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "ignoring the stat cache")) << Describe(r);
  EXPECT_EQ(json::parse(r.out)["snapshot_source"]["files_hashed"], 23);
}

// The object the daemon stores `content` in, found by its content.
fs::path StoredObject(const fs::path& data, const std::string& content) {
  for (const auto& e : fs::recursive_directory_iterator(data / "cas" / "objects")) {
    if (e.is_regular_file() && ReadFile(e.path()) == content) return e.path();
  }
  return {};
}

TEST_F(SnapshotE2eTest, ABlobTheDaemonLostIsUploadedAgain) {
  StartDaemon();
  // Uploaded without a submit: the daemon has checked nothing yet.
  auto create = Aml({"snapshot", "create", project_.string()});
  ASSERT_EQ(create.exit_code, 0) << Describe(create);
  const fs::path object = StoredObject(data_, "X = 1\n");
  ASSERT_FALSE(object.empty());
  ASSERT_TRUE(fs::remove(object));
  // The client trusts its last upload, the daemon refuses the submit for
  // the missing blob, and the client uploads again asking about everything.
  std::string output;
  json j = SubmitAndWait(&output);
  EXPECT_EQ(j["run"]["status"], "COMPLETED") << j.dump(2) << output;
  EXPECT_EQ(j["upload"]["files_uploaded"], 1) << j.dump(2);
  EXPECT_EQ(j["snapshot_source"]["trusted_earlier_upload"], false);
  EXPECT_FALSE(StoredObject(data_, "X = 1\n").empty());
}

TEST_F(SnapshotE2eTest, AnUploadIsNotTrustedAfterTheDaemonRestarts) {
  StartDaemon();
  ASSERT_EQ(Aml({"snapshot", "create", project_.string()}).exit_code, 0);
  ASSERT_EQ(Aml({"daemon", "stop"}).exit_code, 0);
  started_ = false;
  ASSERT_TRUE(fs::remove(StoredObject(data_, "X = 1\n")));
  StartDaemon();
  json j = AmlJson({"snapshot", "create", project_.string()});
  EXPECT_EQ(j["snapshot_source"]["trusted_earlier_upload"], false) << j.dump(2);
  EXPECT_EQ(j["upload"]["files_uploaded"], 1);
}

TEST_F(SnapshotE2eTest, ExplainNamesTheRuleThatLeftEachPathOut) {
  WriteFile(project_ / ".gitignore", "*.log\ndata/\n");
  WriteFile(project_ / "train.log", "noise\n");
  WriteFile(project_ / "data" / "big.bin", std::string(10000, 'd'));
  WriteFile(project_ / "lib" / ".amlignore", "secret.txt\n");
  WriteFile(project_ / "lib" / "secret.txt", "s\n");
  // No daemon needed.
  auto text = Aml({"snapshot", "explain", project_.string()});
  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  EXPECT_TRUE(absl::StrContains(text.out, "*.log")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, ".gitignore:1")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "lib/.amlignore:1")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "within them")) << text.out;

  json j = AmlJson({"snapshot", "explain", project_.string(), "--max-snapshot-files", "2"});
  std::map<std::string, json> ignored;
  for (const auto& e : j["ignored"]) ignored[e["path"]] = e;
  ASSERT_TRUE(ignored.count("data")) << j.dump(2);
  EXPECT_EQ(ignored["data"]["source"], ".gitignore");
  EXPECT_EQ(ignored["data"]["line"], 2);
  EXPECT_EQ(ignored["data"]["pattern"], "data/");
  EXPECT_EQ(ignored["data"]["is_dir"], true);
  EXPECT_EQ(ignored["lib/secret.txt"]["source"], "lib/.amlignore");
  EXPECT_EQ(ignored["train.log"]["pattern"], "*.log");
  std::vector<std::string> files;
  for (const auto& f : j["files"]) files.push_back(f["path"]);
  EXPECT_EQ(files, (std::vector<std::string>{".gitignore", "data.txt", "lib/.amlignore",
                                             "lib/util.py", "train.py"}));
  EXPECT_EQ(j["totals"]["files"], 5);
  EXPECT_EQ(j["limits"]["within"], false);
  EXPECT_EQ(j["largest"][0]["path"], "train.py");
}

TEST_F(SnapshotE2eTest, GoingOverALimitFailsListingTheLargestFiles) {
  StartDaemon();
  WriteFile(project_ / "weights" / "huge.bin", std::string(300000, 'w'));
  auto r = Aml({"run", "submit", "-s", project_.string(), "--max-snapshot-bytes", "100KiB",
                "--interpreter", kPython, "train.py"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "over the limit")) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "weights/huge.bin")) << Describe(r);
  // The same through the environment, for the file count.
  auto args = std::vector<std::string>{"--socket", socket_.string(), "snapshot", "create",
                                       project_.string()};
  args.insert(args.begin(), kAml);
  ProcessOptions o;
  o.env = {{"AMLD_MAX_SNAPSHOT_FILES", "2"}, {"XDG_CACHE_HOME", (dir_ / "cache").string()}};
  auto env = amld::testing::RunProcess(args, o);
  EXPECT_EQ(env.exit_code, 1) << Describe(env);
  EXPECT_TRUE(absl::StrContains(env.err, "4 files, over the limit of 2 files")) << Describe(env);
  EXPECT_TRUE(absl::StrContains(env.err, "weights/huge.bin")) << Describe(env);
  // Within the limits, the same submit goes through.
  auto ok = Aml({"run", "submit", "-s", project_.string(), "--max-snapshot-bytes", "1MiB",
                 "--interpreter", kPython, "--wait", "train.py"});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
}

}  // namespace

// The daemon's own read of the folder (daemon/watch/local_ingest.h), which
// `aml` asks for whenever the folder is not watched.
class LocalIngestE2eTest : public SnapshotE2eTest {
 protected:
  void SetUp() override {
    SnapshotE2eTest::SetUp();
    upload_snapshots_ = false;
    WriteFile(project_ / ".gitignore", "*.log\ndata/\n");
    WriteFile(project_ / "train.log", "left out\n");
    WriteFile(project_ / "data" / "big.bin", std::string(10000, 'd'));
    WriteFile(project_ / "lib" / ".amlignore", "secret.txt\n");
    WriteFile(project_ / "lib" / "secret.txt", "s\n");
    WriteFile(project_ / "lib" / "a b \xc3\xbc.py", "odd name\n");
    WriteFile(project_ / "outputs" / "model.pt", "a local try's output\n");
    fs::create_directories(project_ / "empty" / "nested");
    fs::create_symlink("lib/util.py", project_ / "util_link.py");
  }
  json Create(bool upload) {
    upload_snapshots_ = upload;
    json j = AmlJson({"snapshot", "create", project_.string()});
    upload_snapshots_ = false;
    return j;
  }
};

TEST_F(LocalIngestE2eTest, TheDaemonsReadGivesTheUploadsDigestAndTheRunSeesTheFiles) {
  StartDaemon();
  json read = Create(/*upload=*/false);
  EXPECT_EQ(read["snapshot_source"]["kind"], "daemon_read") << read.dump(2);
  EXPECT_EQ(read["upload"]["bytes_uploaded"], 0) << read.dump(2);
  EXPECT_EQ(read["upload"]["files_total"], 6) << read.dump(2);
  json uploaded = Create(/*upload=*/true);
  EXPECT_EQ(uploaded["snapshot_source"]["kind"], "walk") << uploaded.dump(2);
  EXPECT_EQ(uploaded["snapshot_root"], read["snapshot_root"]) << uploaded.dump(2);

  std::string output;
  json run = SubmitAndWait(&output);
  EXPECT_EQ(run["snapshot_source"]["kind"], "daemon_read") << run.dump(2);
  EXPECT_EQ(run["run"]["status"], "COMPLETED") << run.dump(2) << output;
  EXPECT_TRUE(absl::StrContains(output, "version 1")) << output;
  EXPECT_EQ(run["run"]["config"]["snapshot_root"], read["snapshot_root"]) << run.dump(2);
}

TEST_F(LocalIngestE2eTest, ADaemonThatWillNotReadTheFolderGetsItUploaded) {
  WriteFile(data_ / "amld.yaml", "local_ingest: false\n");
  StartDaemon();
  std::string output;
  json run = SubmitAndWait(&output);
  EXPECT_EQ(run["snapshot_source"]["kind"], "walk") << run.dump(2);
  EXPECT_TRUE(absl::StrContains(run["snapshot_source"].value("local_ingest_fallback", ""),
                                "local_ingest: false"))
      << run.dump(2);
  EXPECT_EQ(run["upload"]["files_uploaded"], 6) << run.dump(2);
  EXPECT_EQ(run["run"]["status"], "COMPLETED") << run.dump(2) << output;
}

TEST_F(LocalIngestE2eTest, AFolderSubmittedTwiceIsWatchedUntilTheDaemonRestarts) {
  StartDaemon();
  json first = SubmitAndWait();
  EXPECT_EQ(first["snapshot_source"]["kind"], "daemon_read") << first.dump(2);
  EXPECT_EQ(first["snapshot_source"]["watching"], false) << first.dump(2);
  json second = SubmitAndWait();
  EXPECT_EQ(second["snapshot_source"]["watching"], true) << second.dump(2);
  json list = AmlJson({"snapshot", "list"});
  ASSERT_EQ(list["roots"].size(), 1u) << list.dump(2);
  EXPECT_EQ(list["roots"][0]["automatic"], true) << list.dump(2);
  // Edited right before the submit: the watch serves the new tree.
  WriteFile(project_ / "data.txt", "version 3\n");
  std::string output;
  json third = SubmitAndWait(&output);
  EXPECT_EQ(third["snapshot_source"]["kind"], "watched_root") << third.dump(2);
  EXPECT_TRUE(absl::StrContains(output, "version 3")) << output;
  EXPECT_EQ(third["snapshot_root"], SubmitAndWait()["snapshot_root"]);

  // Not remembered across a restart, unlike `aml snapshot watch`.
  ASSERT_EQ(Aml({"daemon", "stop"}).exit_code, 0);
  started_ = false;
  StartDaemon();
  EXPECT_EQ(AmlJson({"snapshot", "list"})["roots"].size(), 0u);
}

TEST_F(LocalIngestE2eTest, NoAutoWatchInTheEnvironmentKeepsTheFolderUnwatched) {
  StartDaemon();
  for (int i = 0; i < 3; ++i) {
    auto args = Argv({"--output", "json", "snapshot", "create", project_.string()});
    ProcessOptions o = Options();
    o.env.emplace_back("AMLD_NO_AUTO_WATCH", "1");
    auto r = amld::testing::RunProcess(args, o);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(json::parse(r.out)["snapshot_source"]["kind"], "daemon_read") << r.out;
  }
  EXPECT_EQ(AmlJson({"snapshot", "list"})["roots"].size(), 0u);
}
