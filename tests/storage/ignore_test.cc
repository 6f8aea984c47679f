// Tests for IgnoreRules: one test per gitignore feature on in-memory rules,
// disk tests (.amlignore beats .gitignore, lazy reading, read errors,
// threads), and a generated corpus compared with `git check-ignore`.
#include "storage/ignore.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "tests/testing/test_util.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;
using amld::testing::TempDir;

// ---------------------------------------------------------------------------
// Helpers.

void WriteFile(const fs::path& path, std::string_view contents) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

std::string Quoted(std::string_view s) {
  return "\"" + absl::CEscape(absl::string_view(s.data(), s.size())) + "\"";
}

std::string Describe(const IgnoreDecision& d) {
  if (d.source.empty()) return "not matched";
  std::ostringstream out;
  out << (d.ignored ? "ignored" : "kept") << " by " << d.source << ":" << d.line << ": "
      << Quoted(d.pattern);
  return out.str();
}

// Rules from in-memory files only, as `.gitignore` files.
class MemoryRules {
 public:
  explicit MemoryRules(std::string_view root_file) { Add("", root_file); }
  MemoryRules& Add(std::string_view dir, std::string_view contents) {
    std::string source = dir.empty() ? ".gitignore" : std::string(dir) + "/.gitignore";
    rules_.AddFile(dir, contents, source);
    return *this;
  }
  bool File(std::string_view path) const { return rules_.Check(path, false).ignored; }
  bool Dir(std::string_view path) const { return rules_.Check(path, true).ignored; }
  IgnoreDecision Check(std::string_view path, bool is_dir = false) const {
    return rules_.Check(path, is_dir);
  }

 private:
  IgnoreRules rules_{fs::path()};
};

// ---------------------------------------------------------------------------
// Features, one at a time.

TEST(IgnoreRulesTest, EmptyRootWithoutFilesIgnoresNothingButGit) {
  IgnoreRules rules{fs::path()};
  EXPECT_FALSE(rules.Check("a.txt", false).ignored);
  EXPECT_FALSE(rules.Check("src", true).ignored);
  EXPECT_TRUE(rules.Check(".git", true).ignored);
  EXPECT_TRUE(rules.ReadStatus().ok());
}

TEST(IgnoreRulesTest, AddFileWithEmptyRootReportsTheRule) {
  IgnoreRules rules{fs::path()};
  rules.AddFile("", "# header\n\n*.o\n", "custom-name");
  IgnoreDecision d = rules.Check("src/x.o", false);
  EXPECT_TRUE(d.ignored);
  EXPECT_EQ(d.source, "custom-name");
  EXPECT_EQ(d.line, 3);
  EXPECT_EQ(d.pattern, "*.o");
  IgnoreDecision none = rules.Check("src/x.c", false);
  EXPECT_FALSE(none.ignored);
  EXPECT_EQ(none.source, "");
  EXPECT_EQ(none.line, 0);
  EXPECT_EQ(none.pattern, "");
}

TEST(IgnoreRulesTest, CommentsAndBlankLinesAreNotRules) {
  MemoryRules r("# foo\n\n   \n#bar\nbaz\n");
  EXPECT_FALSE(r.File("# foo"));
  EXPECT_FALSE(r.File("#bar"));
  EXPECT_FALSE(r.File("foo"));
  EXPECT_TRUE(r.File("baz"));
  EXPECT_EQ(r.Check("baz").line, 5);
}

TEST(IgnoreRulesTest, TrailingSpacesAreDroppedUnlessEscaped) {
  MemoryRules r("foo   \nbar\\ \nbaz\\  \n");
  EXPECT_TRUE(r.File("foo"));
  EXPECT_FALSE(r.File("foo "));
  EXPECT_TRUE(r.File("bar "));
  EXPECT_FALSE(r.File("bar"));
  EXPECT_TRUE(r.File("baz "));
  EXPECT_FALSE(r.File("baz  "));
  EXPECT_EQ(r.Check("foo").pattern, "foo");
  EXPECT_EQ(r.Check("bar ").pattern, "bar\\ ");
}

TEST(IgnoreRulesTest, LeadingSpacesAreKept) {
  MemoryRules r("  lead\n");
  EXPECT_TRUE(r.File("  lead"));
  EXPECT_FALSE(r.File("lead"));
}

TEST(IgnoreRulesTest, BackslashEscapesHashAndBang) {
  MemoryRules r("\\#hash\n\\!bang\n");
  EXPECT_TRUE(r.File("#hash"));
  EXPECT_TRUE(r.File("!bang"));
  EXPECT_FALSE(r.File("bang"));
  EXPECT_FALSE(r.Check("#hash").pattern.empty());
}

TEST(IgnoreRulesTest, BackslashEscapesGlobCharacters) {
  MemoryRules r("q\\?\nst\\*r\nbr\\[a]\n");
  EXPECT_TRUE(r.File("q?"));
  EXPECT_FALSE(r.File("qz"));
  EXPECT_TRUE(r.File("st*r"));
  EXPECT_FALSE(r.File("star"));
  EXPECT_TRUE(r.File("br[a]"));
  EXPECT_FALSE(r.File("bra"));
}

TEST(IgnoreRulesTest, TrailingBackslashMatchesNothing) {
  MemoryRules r("foo\\\n");
  EXPECT_FALSE(r.File("foo"));
  EXPECT_FALSE(r.File("foo\\"));
}

TEST(IgnoreRulesTest, CrlfLineEndingsAreTolerated) {
  MemoryRules r("*.o\r\n!keep.o  \r\n");
  EXPECT_TRUE(r.File("a.o"));
  EXPECT_FALSE(r.File("keep.o"));
  EXPECT_EQ(r.Check("keep.o").pattern, "!keep.o");
  EXPECT_EQ(r.Check("keep.o").line, 2);
}

TEST(IgnoreRulesTest, Utf8ByteOrderMarkIsSkipped) {
  MemoryRules r("\xEF\xBB\xBF" "foo\n");
  EXPECT_TRUE(r.File("foo"));
}

TEST(IgnoreRulesTest, LastLineWithoutNewlineCounts) {
  MemoryRules r("a\nb");
  EXPECT_TRUE(r.File("b"));
  EXPECT_EQ(r.Check("b").line, 2);
}

TEST(IgnoreRulesTest, NegationReincludesAndIsReported) {
  MemoryRules r("*.log\n!keep.log\n");
  EXPECT_TRUE(r.File("x.log"));
  IgnoreDecision d = r.Check("sub/keep.log");
  EXPECT_FALSE(d.ignored);
  EXPECT_EQ(d.source, ".gitignore");
  EXPECT_EQ(d.line, 2);
  EXPECT_EQ(d.pattern, "!keep.log");
}

TEST(IgnoreRulesTest, LaterRulesOverrideEarlierOnes) {
  MemoryRules r("!keep.log\n*.log\n");
  EXPECT_TRUE(r.File("keep.log"));
  EXPECT_EQ(r.Check("keep.log").line, 2);
}

TEST(IgnoreRulesTest, TrailingSlashMatchesDirectoriesOnly) {
  MemoryRules r("build/\n");
  EXPECT_TRUE(r.Dir("build"));
  EXPECT_TRUE(r.Dir("src/build"));
  EXPECT_FALSE(r.File("build"));
  EXPECT_FALSE(r.File("src/build"));
  EXPECT_EQ(r.Check("build", true).pattern, "build/");
}

TEST(IgnoreRulesTest, NameWithoutSlashMatchesAtAnyDepth) {
  MemoryRules r("foo\n");
  EXPECT_TRUE(r.File("foo"));
  EXPECT_TRUE(r.File("a/b/foo"));
  EXPECT_TRUE(r.Dir("a/foo"));
  EXPECT_FALSE(r.File("foobar"));
}

TEST(IgnoreRulesTest, LeadingSlashAnchorsToTheFilesDirectory) {
  MemoryRules r("/foo\n");
  EXPECT_TRUE(r.File("foo"));
  EXPECT_FALSE(r.File("a/foo"));
}

TEST(IgnoreRulesTest, MiddleSlashAnchorsToo) {
  MemoryRules r("a/foo\n");
  EXPECT_TRUE(r.File("a/foo"));
  EXPECT_FALSE(r.File("b/a/foo"));
  EXPECT_FALSE(r.File("foo"));
}

TEST(IgnoreRulesTest, StarDoesNotCrossSlashes) {
  MemoryRules r("a/*.c\n");
  EXPECT_TRUE(r.File("a/x.c"));
  EXPECT_TRUE(r.File("a/.c"));
  EXPECT_FALSE(r.File("a/b/x.c"));
}

TEST(IgnoreRulesTest, StarInBasenamePattern) {
  MemoryRules r("*.c\nf*o\n");
  EXPECT_TRUE(r.File("a/b/x.c"));
  EXPECT_TRUE(r.File("fo"));
  EXPECT_TRUE(r.File("fzzo"));
  EXPECT_FALSE(r.File("fzzoz"));
}

TEST(IgnoreRulesTest, QuestionMarkMatchesOneCharButNotSlash) {
  MemoryRules r("?.c\nx/a?c\n");
  EXPECT_TRUE(r.File("a.c"));
  EXPECT_FALSE(r.File("ab.c"));
  EXPECT_FALSE(r.File(".c"));
  EXPECT_TRUE(r.File("x/abc"));
  EXPECT_FALSE(r.File("x/a/c"));
}

TEST(IgnoreRulesTest, BracketClasses) {
  MemoryRules r("[ab].c\n[a-c]x\n[!a]y\n[^a]z\n[]]w\n[a-]e\n[[:digit:]]d\n[[:upper:]]u\n");
  EXPECT_TRUE(r.File("a.c"));
  EXPECT_TRUE(r.File("b.c"));
  EXPECT_FALSE(r.File("c.c"));
  EXPECT_TRUE(r.File("bx"));
  EXPECT_FALSE(r.File("dx"));
  EXPECT_TRUE(r.File("by"));
  EXPECT_FALSE(r.File("ay"));
  EXPECT_TRUE(r.File("bz"));
  EXPECT_FALSE(r.File("az"));
  EXPECT_TRUE(r.File("]w"));
  EXPECT_TRUE(r.File("-e"));
  EXPECT_TRUE(r.File("ae"));
  EXPECT_FALSE(r.File("be"));
  EXPECT_TRUE(r.File("7d"));
  EXPECT_FALSE(r.File("xd"));
  EXPECT_TRUE(r.File("Qu"));
  EXPECT_FALSE(r.File("qu"));
}

TEST(IgnoreRulesTest, NegatedClassDoesNotMatchSlash) {
  MemoryRules r("x/a[!b]c\n");
  EXPECT_TRUE(r.File("x/azc"));
  EXPECT_FALSE(r.File("x/a/c"));
}

TEST(IgnoreRulesTest, MalformedClassesMatchNothing) {
  MemoryRules r("ab[\n[[:bogus:]]x\n");
  EXPECT_FALSE(r.File("ab["));
  EXPECT_FALSE(r.File("ab"));
  EXPECT_FALSE(r.File("ax"));
  EXPECT_FALSE(r.File("[[:bogus:]]x"));
}

TEST(IgnoreRulesTest, LeadingDoubleStarMatchesInAllDirectories) {
  MemoryRules r("**/foo\n**/x/bar\n");
  EXPECT_TRUE(r.File("foo"));
  EXPECT_TRUE(r.File("a/foo"));
  EXPECT_TRUE(r.File("a/b/foo"));
  EXPECT_TRUE(r.File("x/bar"));
  EXPECT_TRUE(r.File("a/b/x/bar"));
  EXPECT_FALSE(r.File("a/bar"));
}

TEST(IgnoreRulesTest, TrailingDoubleStarMatchesEverythingInside) {
  MemoryRules r("a/**\n");
  EXPECT_FALSE(r.Dir("a"));
  EXPECT_TRUE(r.File("a/x"));
  EXPECT_TRUE(r.File("a/b/c/d"));
  EXPECT_FALSE(r.File("b/a/x"));
}

TEST(IgnoreRulesTest, MiddleDoubleStarMatchesZeroOrMoreDirectories) {
  MemoryRules r("a/**/b\n");
  EXPECT_TRUE(r.File("a/b"));
  EXPECT_TRUE(r.File("a/x/b"));
  EXPECT_TRUE(r.File("a/x/y/b"));
  EXPECT_FALSE(r.File("x/a/b"));
  EXPECT_FALSE(r.File("a/xb"));
}

TEST(IgnoreRulesTest, DoubleStarNotBetweenSlashesIsAStar) {
  MemoryRules r("x/a**c\n");
  EXPECT_TRUE(r.File("x/abbc"));
  EXPECT_FALSE(r.File("x/a/c"));
}

TEST(IgnoreRulesTest, DeeperFilesOverrideShallowerOnes) {
  MemoryRules r("*.log\n");
  r.Add("logs", "!keep.log\n");
  EXPECT_TRUE(r.File("keep.log"));
  EXPECT_FALSE(r.File("logs/keep.log"));
  EXPECT_FALSE(r.File("logs/deep/keep.log"));
  EXPECT_TRUE(r.File("logs/x.log"));
  EXPECT_EQ(r.Check("logs/keep.log").source, "logs/.gitignore");
}

TEST(IgnoreRulesTest, NestedPatternsAreRelativeToTheirDirectory) {
  MemoryRules r("");
  r.Add("sub", "/a\nb/c\n");
  EXPECT_TRUE(r.File("sub/a"));
  EXPECT_FALSE(r.File("sub/x/a"));
  EXPECT_FALSE(r.File("a"));
  EXPECT_TRUE(r.File("sub/b/c"));
  EXPECT_FALSE(r.File("b/c"));
  EXPECT_FALSE(r.File("sub/x/b/c"));
}

TEST(IgnoreRulesTest, InsideAnIgnoredDirectoryNegationCannotReinclude) {
  MemoryRules r("build/\n!build/keep\n");
  r.Add("build", "!*\n");
  IgnoreDecision d = r.Check("build/keep");
  EXPECT_TRUE(d.ignored);
  EXPECT_EQ(d.pattern, "build/");
  EXPECT_EQ(d.line, 1);
  EXPECT_TRUE(r.File("build/sub/x"));
}

TEST(IgnoreRulesTest, IgnoringOnlyTheContentsAllowsReinclusion) {
  MemoryRules r("build/*\n!build/keep\n");
  EXPECT_FALSE(r.Dir("build"));
  EXPECT_TRUE(r.File("build/x"));
  EXPECT_FALSE(r.File("build/keep"));
}

TEST(IgnoreRulesTest, WhitelistIdiom) {
  MemoryRules r("*\n!*/\n!*.py\n");
  EXPECT_FALSE(r.Dir("src"));
  EXPECT_FALSE(r.File("src/train.py"));
  EXPECT_TRUE(r.File("src/data.bin"));
}

TEST(IgnoreRulesTest, GitDirectoriesAreAlwaysIgnored) {
  MemoryRules r("!.git/\n!.git\n");
  for (const char* path : {".git", "sub/.git"}) {
    IgnoreDecision d = r.Check(path, true);
    EXPECT_TRUE(d.ignored) << path;
    EXPECT_EQ(d.source, "(builtin)");
    EXPECT_EQ(d.pattern, ".git/");
  }
  EXPECT_EQ(r.Check(".git/config").source, "(builtin)");
  EXPECT_TRUE(r.File("sub/.git/objects/ab/cd"));
  EXPECT_FALSE(r.File(".gitignore"));
  EXPECT_FALSE(r.File(".gitx"));
}

TEST(IgnoreRulesTest, AddFileAfterACheckTakesEffect) {
  MemoryRules r("");
  EXPECT_FALSE(r.File("a/x.o"));
  r.Add("a", "*.o\n");
  EXPECT_TRUE(r.File("a/x.o"));
  r.Add("a", "");
  EXPECT_FALSE(r.File("a/x.o"));
}

TEST(IgnoreRulesTest, OddPathsDoNotCrash) {
  MemoryRules r("a\n");
  EXPECT_FALSE(r.File(""));
  EXPECT_TRUE(r.File("/a/"));
  EXPECT_TRUE(r.File("a//b"));
  EXPECT_FALSE(r.File("b//c"));
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += "d/";
  EXPECT_FALSE(r.File(deep + "x"));
  MemoryRules nul(std::string_view("x\0y\nz", 5));
  EXPECT_TRUE(nul.File("x"));
  EXPECT_TRUE(nul.File("z"));
}

TEST(IgnoreRulesTest, PathologicalPatternsFinish) {
  MemoryRules r("*a*a*a*a*a*a*a*a*a*a*a*a*b\n**/**/**/**/**/**/**/**/**/z\n");
  std::string as(200, 'a');
  EXPECT_FALSE(r.File(as));
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "d/";
  EXPECT_FALSE(r.File(deep + "y"));
  EXPECT_TRUE(r.File(deep + "z"));
}

// ---------------------------------------------------------------------------
// From disk.

TEST(IgnoreRulesDiskTest, AmlignoreBeatsGitignoreInTheSameDirectory) {
  TempDir tmp;
  WriteFile(tmp.path() / ".amlignore", "*.a\n");
  WriteFile(tmp.path() / ".gitignore", "*.g\n");
  WriteFile(tmp.path() / "sub/.gitignore", "*.s\n");
  WriteFile(tmp.path() / "both/.amlignore", "!x.a\n");
  WriteFile(tmp.path() / "both/.gitignore", "*.b\n");
  IgnoreRules rules(tmp.path());
  IgnoreDecision a = rules.Check("x.a", false);
  EXPECT_TRUE(a.ignored);
  EXPECT_EQ(a.source, ".amlignore");
  EXPECT_FALSE(rules.Check("x.g", false).ignored);
  EXPECT_TRUE(rules.Check("sub/x.a", false).ignored);
  IgnoreDecision s = rules.Check("sub/x.s", false);
  EXPECT_TRUE(s.ignored);
  EXPECT_EQ(s.source, "sub/.gitignore");
  EXPECT_FALSE(rules.Check("sub/x.g", false).ignored);
  EXPECT_EQ(rules.Check("both/x.a", false).source, "both/.amlignore");
  EXPECT_FALSE(rules.Check("both/x.a", false).ignored);
  EXPECT_FALSE(rules.Check("both/x.b", false).ignored);
  EXPECT_TRUE(rules.ReadStatus().ok());
}

TEST(IgnoreRulesDiskTest, DirectoryNamedAmlignoreFallsBackToGitignore) {
  TempDir tmp;
  fs::create_directories(tmp.path() / ".amlignore");
  WriteFile(tmp.path() / ".gitignore", "*.g\n");
  IgnoreRules rules(tmp.path());
  EXPECT_TRUE(rules.Check("x.g", false).ignored);
  EXPECT_TRUE(rules.ReadStatus().ok());
}

TEST(IgnoreRulesDiskTest, AddFileReplacesTheFileOnDisk) {
  TempDir tmp;
  WriteFile(tmp.path() / "sub/.gitignore", "*.s\n");
  IgnoreRules rules(tmp.path());
  rules.AddFile("sub", "*.t\n", "sub/override");
  EXPECT_FALSE(rules.Check("sub/x.s", false).ignored);
  EXPECT_EQ(rules.Check("sub/x.t", false).source, "sub/override");
}

TEST(IgnoreRulesDiskTest, EachFileIsReadOnce) {
  TempDir tmp;
  WriteFile(tmp.path() / "sub/.gitignore", "*.s\n");
  IgnoreRules rules(tmp.path());
  EXPECT_TRUE(rules.Check("sub/x.s", false).ignored);
  WriteFile(tmp.path() / "sub/.gitignore", "*.t\n");
  EXPECT_TRUE(rules.Check("sub/y.s", false).ignored);
  EXPECT_FALSE(rules.Check("sub/y.t", false).ignored);
}

TEST(IgnoreRulesDiskTest, MissingRootIgnoresNothing) {
  IgnoreRules rules("/nonexistent/ignore_test/root");
  EXPECT_FALSE(rules.Check("a/b", false).ignored);
  EXPECT_TRUE(rules.ReadStatus().ok());
}

// A sparse file over the size limit cannot be read whoever runs the test
// (root reads files regardless of permissions).
void WriteHugeSparseFile(const fs::path& path) {
  fs::create_directories(path.parent_path());
  WriteFile(path, "*\n");
  fs::resize_file(path, (100u << 20) + 1);
}

TEST(IgnoreRulesDiskTest, UnreadableIgnoreFileIsReported) {
  TempDir tmp;
  WriteHugeSparseFile(tmp.path() / "sub/.gitignore");
  IgnoreRules rules(tmp.path());
  EXPECT_TRUE(rules.ReadStatus().ok());
  EXPECT_FALSE(rules.Check("sub/x", false).ignored);
  absl::Status status = rules.ReadStatus();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("sub/.gitignore"), absl::string_view::npos) << status;
}

TEST(IgnoreRulesDiskTest, PermissionDeniedIsReported) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  TempDir tmp;
  WriteFile(tmp.path() / ".amlignore", "*\n");
  fs::permissions(tmp.path() / ".amlignore", fs::perms::none);
  IgnoreRules rules(tmp.path());
  EXPECT_FALSE(rules.Check("x", false).ignored);
  EXPECT_EQ(rules.ReadStatus().code(), absl::StatusCode::kPermissionDenied);
}

TEST(IgnoreRulesDiskTest, FilesInsideIgnoredDirectoriesAreNotRead) {
  TempDir tmp;
  WriteFile(tmp.path() / ".gitignore", "build/\n");
  WriteHugeSparseFile(tmp.path() / "build/.gitignore");
  IgnoreRules rules(tmp.path());
  EXPECT_TRUE(rules.Check("build/x", false).ignored);
  EXPECT_TRUE(rules.Check("build/sub/y", false).ignored);
  EXPECT_TRUE(rules.ReadStatus().ok()) << rules.ReadStatus();
}

TEST(IgnoreRulesDiskTest, ConcurrentChecksAgreeWithSerialOnes) {
  TempDir tmp;
  WriteFile(tmp.path() / ".gitignore", "*.o\nbuild/\n");
  std::vector<std::string> paths;
  for (int d = 0; d < 20; ++d) {
    std::string dir = "d" + std::to_string(d);
    WriteFile(tmp.path() / dir / ".gitignore", d % 2 ? "!keep.o\n" : "/x*\n");
    for (const char* f : {"a.o", "keep.o", "x1", "build/y", "s/x2", "s/keep.o"}) {
      paths.push_back(dir + "/" + f);
    }
  }
  std::vector<bool> serial;
  {
    IgnoreRules rules(tmp.path());
    for (const auto& p : paths) serial.push_back(rules.Check(p, false).ignored);
  }
  IgnoreRules shared(tmp.path());
  std::vector<std::vector<bool>> results(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      results[t].resize(paths.size());
      for (size_t i = 0; i < paths.size(); ++i) {
        size_t k = (i * 7 + t * 13) % paths.size();  // a different order per thread
        results[t][k] = shared.Check(paths[k], false).ignored;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(results[t], serial) << "thread " << t;
  EXPECT_GT(std::count(serial.begin(), serial.end(), true), 0);
  EXPECT_GT(std::count(serial.begin(), serial.end(), false), 0);
}

// ---------------------------------------------------------------------------
// Against git. Each scenario is a tree of files and directories plus ignore
// files; git check-ignore decides every path, and so do we.

// Files and directories by path; directories are true.
using Tree = std::map<std::string, bool>;
// Ignore files by directory ("" is the root), with their exact bytes.
using IgnoreFiles = std::vector<std::pair<std::string, std::string>>;

struct Scenario {
  std::string name;
  IgnoreFiles files;
  Tree tree;
};

// Adds `path` and its parent directories; false (nothing added) when that
// would make a file a directory or the reverse.
bool AddPath(Tree& tree, const std::string& path, bool is_dir) {
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    auto it = tree.find(path.substr(0, slash));
    if (it != tree.end() && !it->second) return false;
  }
  auto it = tree.find(path);
  if (it != tree.end() && it->second != is_dir) return false;
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    tree[path.substr(0, slash)] = true;
  }
  tree[path] = is_dir;
  return true;
}

// Every scenario has these paths; names exercise escapes, classes, case and
// spaces. Entries ending in '/' are directories.
Tree BaseTree() {
  static const char* const kPaths[] = {
      "foo", "foo.txt", "Foo", "x.log", "keep.log", "abc", "abd", "abe", "a-b", "sp ace",
      "tail ", " sp", "#hash", "!bang", "br[a]", "bra", "q?", "qz", "st*r", "star", "b\\s", ".hidden",
      "data1", "data2", "dataX", "datax", "build/out.o", "build/keep.log", "build/sub/x.log",
      "a/b/c.txt", "a/x/b/c.txt", "a/foo", "a/b/foo/bar", "a/b/x.log", "doc/foo.txt",
      "doc/api/foo.txt", "doc/api/x.log", "src/foo/bar", "src/foo.txt", "src/build/x",
      "src/lib/a.c", "src/lib/keep.log", "src/bar", "src/foo bar/baz", "logs/keep.log",
      "logs/x.log", "logs/deep/x.log", "logs/deep/keep.log", "node_modules/pkg/index.js",
      "empty/", "foobar/", "foo/", "bar/foo/"};
  Tree tree;
  for (std::string p : kPaths) {
    bool is_dir = p.back() == '/';
    if (is_dir) p.pop_back();
    // "foo" is a file at the root, "foo/" a directory elsewhere (bar/foo).
    if (p == "foo" && is_dir) continue;
    AddPath(tree, p, is_dir);
  }
  return tree;
}

// Deterministic across platforms (std:: distributions are not).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  bool Percent(int p) { return static_cast<int>(Below(100)) < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Below(v.size())]; }

 private:
  uint64_t state_;
};

// One line each; together they cover every gitignore feature.
const std::vector<std::string>& PatternTable() {
  static const std::vector<std::string> kPatterns = {
      // Names and anchoring.
      "foo", "/foo", "foo/", "/foo/", "bar", "bar/", "a/foo", "/a/foo", "a/b", "a/b/", "b/", "b",
      "src/build", "src/build/", "build", "/build", "build/", "/build/", "doc/api", "api/",
      "foo.txt", "/src/foo.txt", "node_modules", "node_modules/", "foo//", "/", "a/b/foo/",
      // '*' and '?'.
      "*", "/*", "*/", "/*/", "*.log", "*.txt", "*.LOG", "x.lo?", "?oo", "???", "f*", "*o*",
      "a/*", "a/*/c.txt", "*/foo", "*/*/foo", "src/*", "doc/*.txt", "logs/*.log", "*.t?t", ".*",
      ".hidden", "*bar", "*/", "src/*/bar", "a/?/c.txt", "/?oo",
      // Glob characters where a '/' is: none of them may match it.
      "a?b/c.txt", "src?foo.txt", "src*foo.txt", "a[/]b/c.txt", "src[!a]foo.txt", "doc?api",
      "a/b?foo/bar",
      // Bracket classes.
      "ab[cd]", "ab[!c]", "ab[^c]", "ab[b-d]", "ab[a-c]", "ab[c-a]", "data[0-9]", "data[!0-9]",
      "data[[:digit:]]", "data[[:alpha:]]", "data[[:upper:]]", "data[[:lower:]]", "br[[]a]",
      "br\\[a]", "[ab]", "a[-]b", "a[a-]b", "[]]", "ab[", "ab[c", "[", "data[[:bogus:]]",
      "[[:alpha:]]*", "[Ff]oo", "sp[ ]ace", "data[1-2X]", "[!.]*", "q[?]", "st[*]r", "b[\\\\]s",
      "data[[:alnum:]]", "[a-c]b[c-e]", "x.l[!a-f]g", "[[:punct:]]*", "ab[a-c-e]",
      // Escapes, comments and spaces.
      "\\#hash", "#hash", "\\!bang", "!bang", "tail\\ ", "tail ", "tail", "sp ace", "sp\\ ace",
      "foo   ", "foo\\", "q\\?", "q?", "st\\*r", "st*r", "b\\\\s", "\\f\\o\\o", "foo \\ ",
      "  foo", "\\ ", "#", "!",
      // "**".
      "**", "**/", "/**", "**/foo", "**/foo/bar", "**/b", "**/b/", "**/b/c.txt", "a/**", "a/**/",
      "doc/**", "a/**/c.txt", "a/**/b", "src/**/bar", "**/api/*.txt", "**/*.log", "foo**/bar",
      "f**", "**.log", "a**b", "a/**b", "**/**/foo", "a/**/**/c.txt", "logs/**/x.log", "**/logs",
      "**/deep/", "src/**", "**/x", "/**/foo", "a/b**", "**foo", "a\\/**/c.txt",
      // Negations with nothing before them.
      "!foo", "!*.log",
  };
  return kPatterns;
}

// Rule sets written by hand: the interplay of rules and files.
std::vector<Scenario> HandWrittenScenarios() {
  std::vector<std::pair<std::string, IgnoreFiles>> sets = {
      {"negation", {{"", "*.log\n!keep.log\n"}}},
      {"later rule wins", {{"", "!keep.log\n*.log\n"}}},
      {"dir then reinclude inside", {{"", "build/\n!build/keep.log\n"}}},
      {"contents then reinclude", {{"", "build/*\n!build/keep.log\n"}}},
      {"double star contents", {{"", "build/**\n!build/sub/\n!build/sub/**\n"}}},
      {"whitelist", {{"", "*\n!*/\n!*.txt\n"}}},
      {"nested whitelist", {{"", "/*\n!/src/\n/src/*\n!/src/lib/\n"}}},
      {"logs contents", {{"", "logs/*\n!logs/keep.log\n"}}},
      {"logs dir", {{"", "logs\n!logs/keep.log\n"}}},
      {"comments", {{"", "# comment\n\n*.txt\n  \n\\#hash\n#foo\n"}}},
      {"crlf", {{"", "*.log\r\n!keep.log\r\n\r\nfoo \r\n"}}},
      {"bom", {{"", "\xEF\xBB\xBF" "foo\n*.txt\n"}}},
      {"no final newline", {{"", "foo\nbar"}}},
      {"negate back", {{"", "foo\nbar\n!foo\n"}}},
      {"dir then subdir", {{"", "a/\n!a/b/\n"}}},
      {"empty file", {{"", ""}}},
      {"only comments", {{"", "# a\n#b\n"}}},
      {"deeper negation", {{"", "*.log\n"}, {"logs", "!keep.log\n"}}},
      {"deeper flip", {{"", "*.log\n"}, {"logs", "!*.log\nx.log\n"}}},
      {"deeper adds", {{"", "!x.log\n"}, {"doc", "*.log\n"}}},
      {"inside ignored dir", {{"", "build/\n"}, {"build", "!*\n!*/\n"}}},
      {"nested anchored", {{"a", "/b\n"}}},
      {"nested middle slash", {{"a", "b/c.txt\n"}}},
      {"nested double star", {{"a", "**/c.txt\n!x/**\n"}}},
      {"nested dir", {{"src", "/build/\nfoo\n"}}},
      {"nested glob", {{"src", "**/bar\n*.txt\n"}}},
      {"three levels", {{"", "foo\n"}, {"a", "!foo\n"}, {"a/b", "foo/\n"}}},
      {"nested api", {{"doc", "*.txt\n!api/*.txt\n"}}},
      {"star then nested", {{"", "*\n!*/\n"}, {"src", "!*.c\n"}}},
      {"root dir, nested reinclude", {{"", "a/b/\n"}, {"a", "!b/\n"}}},
      {"crlf nested", {{"", "*.txt\r\n"}, {"doc", "!foo.txt \r\n"}}},
      {"nested parent pattern", {{"src", "../foo\nlib/\n"}}},
      {"deep nested", {{"logs/deep", "*\n"}, {"logs", "!deep/keep.log\n"}}},
  };
  std::vector<Scenario> out;
  for (auto& [name, files] : sets) out.push_back({"hand: " + name, files, BaseTree()});
  return out;
}

// Each table pattern alone, at the root and in src/.gitignore.
std::vector<Scenario> TableScenarios() {
  std::vector<Scenario> out;
  for (const std::string& p : PatternTable()) {
    out.push_back({"table (root): " + Quoted(p), {{"", p + "\n"}}, BaseTree()});
    out.push_back({"table (src): " + Quoted(p), {{"src", p + "\n"}}, BaseTree()});
  }
  return out;
}

// Random mixes of table lines, negations, nested files and extra paths.
std::vector<Scenario> RandomScenarios(int count) {
  static const std::vector<std::string> kDirs = {"", "", "a", "a/b", "doc", "src", "src/lib",
                                                 "logs", "build", "build/sub", "a/x", "bar"};
  static const std::vector<std::string> kNames = {
      "foo", "bar", "b", "x.log", "keep.log", "c.txt", "api", "deep", "lib", "abc", "data1",
      "Foo", ".hidden", "build", "sub", "q?", "tail ", "#hash", "!bang", "sp ace", "z"};
  SplitMix64 rng(0x5eed1e5);
  std::vector<Scenario> out;
  for (int i = 0; i < count; ++i) {
    Scenario s{"random #" + std::to_string(i), {}, BaseTree()};
    const char* eol = rng.Percent(20) ? "\r\n" : "\n";
    std::map<std::string, std::string> files;
    int nfiles = 1 + static_cast<int>(rng.Below(3));
    for (int f = 0; f < nfiles; ++f) {
      std::string& text = files[rng.Pick(kDirs)];
      int nlines = 1 + static_cast<int>(rng.Below(5));
      for (int l = 0; l < nlines; ++l) {
        std::string line = rng.Pick(PatternTable());
        if (rng.Percent(30) && !line.empty() && line[0] != '!' && line[0] != '#') {
          line = "!" + line;
        }
        text += line + eol;
      }
    }
    s.files.assign(files.begin(), files.end());
    for (int e = 0; e < 12; ++e) {
      std::string path = rng.Pick(kDirs);
      int depth = 1 + static_cast<int>(rng.Below(3));
      for (int d = 0; d < depth; ++d) path += (path.empty() ? "" : "/") + rng.Pick(kNames);
      AddPath(s.tree, path, rng.Percent(40));
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A repository reused by every scenario: its work tree is replaced each
// time. Git runs without the user's or the system's configuration, so only
// the scenario's ignore files count.
class GitOracle {
 public:
  explicit GitOracle(const fs::path& dir) : dir_(dir), repo_(dir / "repo") {
    fs::create_directories(repo_);
    env_ = "HOME=" + ShellQuote(dir_.string()) + " XDG_CONFIG_HOME=" +
           ShellQuote(dir_.string()) + " GIT_CONFIG_NOSYSTEM=1 ";
  }
  const fs::path& repo() const { return repo_; }

  std::string Init() {
    std::string cmd = env_ + "git init -q " + ShellQuote(repo_.string()) + " 2>&1";
    return std::system(cmd.c_str()) == 0 ? "" : "git init failed: " + cmd;
  }

  // Changes the work tree from the last scenario's to this one's. Scenarios
  // share most paths, so this touches few files (and keeps the test fast).
  void Populate(const Scenario& s) {
    std::error_code ec;
    for (const std::string& dir : ignore_dirs_) fs::remove(repo_ / dir / ".gitignore", ec);
    // Children come before their parents in reverse order.
    for (auto it = tree_.rbegin(); it != tree_.rend(); ++it) {
      auto now = s.tree.find(it->first);
      if (now == s.tree.end() || now->second != it->second) fs::remove_all(repo_ / it->first);
    }
    for (const auto& [path, is_dir] : s.tree) {
      if (is_dir) {
        fs::create_directories(repo_ / path);
      } else if (!fs::exists(repo_ / path)) {
        WriteFile(repo_ / path, "x");
      }
    }
    tree_ = s.tree;
    ignore_dirs_.clear();
    for (const auto& [dir, text] : s.files) {
      WriteFile(repo_ / dir / ".gitignore", text);
      ignore_dirs_.push_back(dir);
    }
  }

  // git's decision for each path as it reports it (source, line, pattern;
  // all empty when no rule matched); an error message on failure.
  std::string Ask(const std::vector<std::string>& paths,
                  std::map<std::string, IgnoreDecision>* out) {
    std::string query;
    for (const auto& p : paths) query += p + '\0';
    WriteFile(dir_ / "query", query);
    std::string cmd = "cd " + ShellQuote(repo_.string()) + " && " + env_ +
                      "git check-ignore --no-index -v -n -z --stdin < " +
                      ShellQuote((dir_ / "query").string()) + " > " +
                      ShellQuote((dir_ / "answer").string()) + " 2> " +
                      ShellQuote((dir_ / "errors").string());
    int rc = std::system(cmd.c_str());
    // 0: some path matched a rule, 1: none did; anything else is an error.
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) > 1) {
      return "git check-ignore failed (" + std::to_string(rc) + "): " + ReadAll(dir_ / "errors");
    }
    std::vector<std::string> fields;
    std::string answer = ReadAll(dir_ / "answer");
    for (size_t start = 0, end; start < answer.size(); start = end + 1) {
      end = answer.find('\0', start);
      if (end == std::string::npos) return "unterminated git output";
      fields.push_back(answer.substr(start, end - start));
    }
    if (fields.size() != 4 * paths.size()) return "git answered for a different set of paths";
    for (size_t i = 0; i < fields.size(); i += 4) {
      IgnoreDecision& d = (*out)[fields[i + 3]];
      d.source = fields[i];
      d.line = fields[i + 1].empty() ? 0 : std::stoi(fields[i + 1]);
      d.pattern = fields[i + 2];
      d.ignored = !d.pattern.empty() && d.pattern[0] != '!';
    }
    return "";
  }

 private:
  fs::path dir_;
  fs::path repo_;
  std::string env_;
  Tree tree_;                             // in the work tree now
  std::vector<std::string> ignore_dirs_;  // directories with a .gitignore now
};

// Our rule: a path inside an ignored directory is ignored by the rule that
// ignored the outermost such directory. git 2.39 reports that already, but
// older gits answer for the path alone, so compare like with like by
// consulting git's answers for each ancestor first.
IgnoreDecision GitDecision(const std::map<std::string, IgnoreDecision>& git,
                           const std::string& path) {
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const IgnoreDecision& ancestor = git.at(path.substr(0, slash));
    if (ancestor.ignored) return ancestor;
  }
  return git.at(path);
}

std::string DescribeScenario(const Scenario& s) {
  std::string out = s.name + "\n";
  for (const auto& [dir, text] : s.files) {
    out += "    " + (dir.empty() ? std::string() : dir + "/") + ".gitignore = " + Quoted(text) + "\n";
  }
  return out;
}

struct Tally {
  int cases = 0;
  int ignored = 0;
  int negated = 0;  // kept by a "!" rule
  std::vector<std::string> mismatches;
};

void CompareWithGit(GitOracle& git, const Scenario& s, Tally& tally) {
  git.Populate(s);
  std::vector<std::string> paths;
  Tree tree = s.tree;
  for (const auto& [dir, text] : s.files) AddPath(tree, (dir.empty() ? "" : dir + "/") + ".gitignore", false);
  for (const auto& [path, is_dir] : tree) paths.push_back(path);
  std::map<std::string, IgnoreDecision> answers;
  std::string error = git.Ask(paths, &answers);
  if (!error.empty()) {
    tally.mismatches.push_back(DescribeScenario(s) + "  " + error);
    return;
  }
  IgnoreRules rules(git.repo());
  for (const auto& [path, is_dir] : tree) {
    IgnoreDecision want = GitDecision(answers, path);
    IgnoreDecision got = rules.Check(path, is_dir);
    ++tally.cases;
    tally.ignored += want.ignored;
    tally.negated += !want.ignored && !want.pattern.empty();
    if (got.ignored == want.ignored && got.source == want.source && got.line == want.line &&
        got.pattern == want.pattern) {
      continue;
    }
    tally.mismatches.push_back(DescribeScenario(s) + "  path " + Quoted(path) +
                               (is_dir ? " (dir)" : " (file)") + ": git " + Describe(want) +
                               "; ours " + Describe(got));
  }
}

TEST(IgnoreRulesGitTest, AgreesWithGitCheckIgnore) {
  ASSERT_EQ(std::system("git --version > /dev/null 2>&1"), 0)
      << "git is needed as the reference for gitignore semantics";
  TempDir tmp;
  GitOracle git(tmp.path());
  std::string error = git.Init();
  ASSERT_EQ(error, "");

  std::vector<Scenario> scenarios = HandWrittenScenarios();
  for (auto& s : TableScenarios()) scenarios.push_back(std::move(s));
  for (auto& s : RandomScenarios(80)) scenarios.push_back(std::move(s));
  Tally tally;
  for (const Scenario& s : scenarios) CompareWithGit(git, s, tally);

  std::cout << "compared " << tally.cases << " path decisions in " << scenarios.size()
            << " scenarios with git check-ignore: " << tally.ignored << " ignored, "
            << tally.negated << " kept by a negation, " << tally.mismatches.size()
            << " mismatches\n";
  const size_t kShown = 40;
  for (size_t i = 0; i < std::min(kShown, tally.mismatches.size()); ++i) {
    ADD_FAILURE() << "mismatch with git: " << tally.mismatches[i];
  }
  EXPECT_EQ(tally.mismatches.size(), 0u);
  // The corpus must exercise both outcomes to mean anything.
  EXPECT_GE(tally.cases, 200);
  EXPECT_GE(tally.ignored, tally.cases / 20);
  EXPECT_GE(tally.cases - tally.ignored, tally.cases / 20);
  EXPECT_GE(tally.negated, 50);
}

}  // namespace
}  // namespace amld::storage
