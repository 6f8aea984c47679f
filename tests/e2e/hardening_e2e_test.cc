// Hardening (issue 19), end to end: file names a run may write that are not
// UTF-8 or hold control characters (the run's other files stay reachable,
// every file is listed in a printable, lossless form and downloads under its
// own bytes); garbage collection of the CAS (what nothing refers to goes,
// what a run or a watched folder holds stays).
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/e2e/aml_e2e_fixture.h"
#include "tests/testing/subprocess.h"

namespace {

using namespace amld::e2e;  // NOLINT: the shared e2e fixture and helpers
using amld::testing::WriteFile;

class HardeningE2eTest : public AmlDaemonTest {
 protected:
  void SetUp() override { SetUpWorkspace("amld-harden-e2e-"); }
};

const std::string kBadName = "bad\xff\xfe.txt";                // not UTF-8
const std::string kControlName = "esc\x1b[31m\nline\\x41.txt";  // ESC, newline, a backslash

TEST_F(HardeningE2eTest, NonUtf8AndControlNamesDoNotBreakTheRun) {
  StartDaemon();
  WriteFile(project_ / "train.py", R"(import os
os.makedirs("outputs/sub", exist_ok=True)
with open(b"outputs/bad\xff\xfe.txt", "wb") as f:
    f.write(b"bad bytes")
with open(b"outputs/esc\x1b[31m\nline\\x41.txt", "wb") as f:
    f.write(b"control")
with open("outputs/sub/good.txt", "w") as f:
    f.write("good")
)");
  const std::string id = Submit("train.py");
  auto w = Aml({"run", "wait", id});
  ASSERT_EQ(w.exit_code, 0) << Describe(w);

  // Listed, each name printable on its one line.
  auto r = Aml({"run", "files", id, "--prefix", "outputs/"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("outputs/bad\\xff\\xfe.txt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outputs/esc\\x1b[31m\\x0aline\\\\x41.txt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outputs/sub/good.txt"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "a raw escape sequence was printed";
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;  // header + 3 files
  json listed = AmlJson({"run", "files", id});
  ASSERT_TRUE(listed.contains("files")) << listed.dump();

  // Every file of the prefix downloads under its own bytes.
  r = Aml({"run", "download", id, "--prefix", "outputs/", "-o", (dir_ / "all").string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadFile(dir_ / "all" / "outputs" / kBadName), "bad bytes");
  EXPECT_EQ(ReadFile(dir_ / "all" / "outputs" / kControlName), "control");
  EXPECT_EQ(ReadFile(dir_ / "all" / "outputs" / "sub" / "good.txt"), "good");
  json done = AmlJson({"run", "download", id, "--prefix", "outputs/", "-o",
                       (dir_ / "json").string()});
  ASSERT_EQ(done["files"].size(), 3u) << done.dump();

  // One file: by its bytes, or by the form `aml run files` shows.
  r = Aml({"run", "download", id, "outputs/" + kBadName, "-o", "-"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "bad bytes");
  r = Aml({"run", "download", id, "outputs/bad\\xff\\xfe.txt", "-o", "-"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "bad bytes");
  r = Aml({"run", "download", id, "outputs/esc\\x1b[31m\\x0aline\\\\x41.txt", "-o",
           (dir_ / "one").string() + "/"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadFile(dir_ / "one" / kControlName), "control");

  // A name that is not there is reported escaped.
  r = Aml({"run", "download", id, "outputs/missing\xff", "-o", "-"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("outputs/missing\\xff"), std::string::npos) << Describe(r);
}

TEST_F(HardeningE2eTest, GcRemovesOnlyWhatNothingRefersTo) {
  StartDaemon();
  WriteFile(project_ / "train.py", R"(import os
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights")
)");
  const std::string id = Submit("train.py");
  auto w = Aml({"run", "wait", id});
  ASSERT_EQ(w.exit_code, 0) << Describe(w);
  // Uploaded, never submitted.
  const fs::path abandoned = dir_ / "abandoned";
  WriteFile(abandoned / "big.bin", std::string(100000, 'a'));
  WriteFile(abandoned / "note.txt", "uploaded for a run never submitted");
  auto r = Aml({"snapshot", "create", abandoned.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // A watched folder's files.
  const fs::path watched = dir_ / "watched";
  WriteFile(watched / "train.py", "print('from a watched folder')\n");
  r = Aml({"snapshot", "watch", watched.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  r = Aml({"daemon", "status"});
  EXPECT_NE(r.out.find("cas gc:        every 6h00m"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("none since start"), std::string::npos) << r.out;

  // With the default grace, everything just uploaded is young: kept.
  json report = AmlJson({"daemon", "gc"});
  EXPECT_EQ(report.value("objects_removed", int64_t{0}), 0) << report.dump();
  // Without one, the abandoned upload goes (two files and its folder).
  report = AmlJson({"daemon", "gc", "--grace", "0"});
  EXPECT_GE(report.value("objects_removed", int64_t{0}), 3) << report.dump();
  EXPECT_GE(report.value("bytes_removed", int64_t{0}), 100000) << report.dump();
  r = Aml({"daemon", "gc", "--grace", "0"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("0 objects removed"), std::string::npos) << r.out;
  r = Aml({"daemon", "gc", "--grace", "soon"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);

  // What the run holds is whole: its outputs, and its snapshot, which a
  // resubmit materializes again.
  r = Aml({"run", "download", id, "outputs/model.txt", "-o", "-"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "weights");
  const std::string again = Submit("train.py");
  w = Aml({"run", "wait", again});
  EXPECT_EQ(w.exit_code, 0) << Describe(w);
  // So is the watched folder.
  r = Aml({"run", "submit", "-q", "-s", watched.string(), "--interpreter", kPython, "train.py"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string watched_run = r.out.substr(0, r.out.find('\n'));
  w = Aml({"run", "wait", watched_run});
  EXPECT_EQ(w.exit_code, 0) << Describe(w);
  r = Aml({"run", "logs", watched_run});
  EXPECT_EQ(r.out, "from a watched folder\n") << Describe(r);

  r = Aml({"daemon", "status"});
  EXPECT_NE(r.out.find(" ago, 0 objects removed"), std::string::npos) << r.out;
}

}  // namespace
