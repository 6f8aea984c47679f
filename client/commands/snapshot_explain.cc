// `aml snapshot explain [DIR]`: what a snapshot of the folder would hold —
// every included file, every path left out with the rule and ignore file
// that left it out, the largest files, the totals and how they compare with
// the limits — without reading a single file (sizes come from stat) and
// without a daemon.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "client/commands/command.h"
#include "client/commands/options.h"
#include "client/commands/output.h"
#include "client/commands/snapshot_limits.h"
#include "storage/snapshot/snapshot.h"

namespace amld::client::commands {
namespace {

namespace fs = std::filesystem;
using amld::storage::Snapshot;
using amld::storage::SnapshotFile;

struct ExplainOptions {
  fs::path source_dir = ".";
  SnapshotLimits limits;
  int largest = 10;
};

// Answers every lookup with a placeholder digest of the right size, so the
// walk applies every rule without reading any file. The tree's digests are
// meaningless; only names, sizes and modes are used here.
class StatOnlyCache final : public amld::storage::DigestCache {
 public:
  std::optional<amld::storage::Digest> Lookup(const std::string&, const struct stat& st) override {
    return amld::storage::Digest{std::string(64, '0'), st.st_size};
  }
  void Store(const std::string&, const struct stat&, const amld::storage::Digest&) override {}
};

std::string Rule(const amld::storage::SkippedPath& s) {
  if (!s.decision.ignored) return "-";
  return s.decision.pattern;
}

std::string Where(const amld::storage::SkippedPath& s) {
  if (!s.decision.ignored) return absl::StrCat("(", s.why, ": not a file, folder or link)");
  if (s.decision.source == amld::storage::kBuiltinRuleSource) return "(always left out)";
  if (s.decision.source == amld::storage::kDefaultRuleSource) {
    return absl::StrCat("(by default; \"!", s.decision.pattern, "\" in .amlignore keeps it)");
  }
  return absl::StrCat(s.decision.source, ":", s.decision.line);
}

std::vector<const SnapshotFile*> Largest(const Snapshot& snap, int n) {
  std::vector<const SnapshotFile*> all;
  for (const SnapshotFile& f : snap.files) all.push_back(&f);
  const size_t shown = std::min<size_t>(std::max(n, 0), all.size());
  std::partial_sort(all.begin(), all.begin() + shown, all.end(),
                    [](const SnapshotFile* a, const SnapshotFile* b) {
                      return a->digest.size != b->digest.size ? a->digest.size > b->digest.size
                                                              : a->rel_path < b->rel_path;
                    });
  all.resize(shown);
  return all;
}

// Empty when within the limits, else what is over.
std::string LimitProblem(const Snapshot& snap, const SnapshotLimits& limits) {
  const int64_t files = static_cast<int64_t>(snap.files.size());
  std::string over;
  if (limits.max_files > 0 && files > limits.max_files) {
    over = absl::StrCat(files, " files, over the limit of ", limits.max_files);
  }
  if (limits.max_bytes > 0 && snap.total_file_bytes > limits.max_bytes) {
    absl::StrAppend(&over, over.empty() ? "" : "; ", HumanBytes(snap.total_file_bytes),
                    ", over the limit of ", HumanBytes(limits.max_bytes));
  }
  return over;
}

void PrintJson(const fs::path& dir, const Snapshot& snap, const ExplainOptions& o) {
  nlohmann::json files = nlohmann::json::array();
  for (const SnapshotFile& f : snap.files) {
    files.push_back({{"path", f.rel_path}, {"bytes", f.digest.size}, {"executable", f.executable}});
  }
  nlohmann::json ignored = nlohmann::json::array();
  for (const auto& s : snap.skipped) {
    ignored.push_back({{"path", s.rel_path},
                       {"is_dir", s.is_dir},
                       {"ignored_by_rule", s.decision.ignored},
                       {"source", s.decision.source},
                       {"line", s.decision.line},
                       {"pattern", s.decision.pattern},
                       {"why", s.why}});
  }
  nlohmann::json largest = nlohmann::json::array();
  for (const SnapshotFile* f : Largest(snap, o.largest)) {
    largest.push_back({{"path", f->rel_path}, {"bytes", f->digest.size}});
  }
  const std::string problem = LimitProblem(snap, o.limits);
  nlohmann::json j = {{"source_dir", dir.string()},
                      {"files", files},
                      {"ignored", ignored},
                      {"largest", largest},
                      {"totals",
                       {{"files", snap.files.size()},
                        {"bytes", snap.total_file_bytes},
                        {"ignored", snap.skipped.size()}}},
                      {"limits",
                       {{"max_bytes", o.limits.max_bytes},
                        {"max_files", o.limits.max_files},
                        {"within", problem.empty()},
                        {"problem", problem}}}};
  std::cout << j.dump(2) << std::endl;
}

void PrintText(const fs::path& dir, const Snapshot& snap, const ExplainOptions& o) {
  std::cout << "included (" << snap.files.size() << " files):\n";
  std::vector<std::vector<std::string>> rows;
  for (const SnapshotFile& f : snap.files) {
    rows.push_back({"  " + f.rel_path, HumanBytes(f.digest.size), f.executable ? "x" : ""});
  }
  PrintTable(std::cout, {"  PATH", "SIZE", "EXEC"}, rows);
  std::cout << "\nleft out (" << snap.skipped.size() << " paths; a folder's content is not "
            << "listed):\n";
  rows.clear();
  for (const auto& s : snap.skipped) {
    rows.push_back({"  " + s.rel_path + (s.is_dir ? "/" : ""), Rule(s), Where(s)});
  }
  PrintTable(std::cout, {"  PATH", "RULE", "WHERE"}, rows);
  std::cout << "\nlargest files:\n";
  rows.clear();
  for (const SnapshotFile* f : Largest(snap, o.largest)) {
    rows.push_back({"  " + HumanBytes(f->digest.size), f->rel_path});
  }
  PrintTable(std::cout, {"  SIZE", "PATH"}, rows);
  std::cout << "\ntotal: " << snap.files.size() << " files, " << HumanBytes(snap.total_file_bytes)
            << " (" << snap.total_file_bytes << " bytes) in " << dir.string() << "; "
            << snap.skipped.size() << " paths left out\n";
  const std::string problem = LimitProblem(snap, o.limits);
  std::cout << "limits: "
            << (o.limits.max_files > 0 ? std::to_string(o.limits.max_files) : "any number of")
            << " files and "
            << (o.limits.max_bytes > 0 ? HumanBytes(o.limits.max_bytes) : "any size") << ": "
            << (problem.empty() ? "within them"
                                : "OVER (" + problem +
                                      "): a submit would fail; list what the run does not need "
                                      "in .amlignore, or raise the limits")
            << std::endl;
}

int RunSnapshotExplain(const GlobalOptions& global, const ExplainOptions& o) {
  std::error_code ec;
  fs::path dir = fs::absolute(o.source_dir, ec).lexically_normal();
  if (ec || !fs::is_directory(dir, ec)) {
    return ReportError(global,
                       absl::NotFoundError(absl::StrCat("the source folder ", o.source_dir.string(),
                                                        " does not exist or is not a folder")));
  }
  StatOnlyCache no_reads;
  amld::storage::BuildOptions options;
  options.cache = &no_reads;
  auto snap = amld::storage::BuildSnapshot(dir, options);
  if (!snap.ok()) return ReportError(global, snap.status());
  if (global.json()) {
    PrintJson(dir, *snap, o);
  } else {
    PrintText(dir, *snap, o);
  }
  return kExitOk;
}

}  // namespace

void AddSnapshotExplainCommand(CLI::App& snapshot, CommandContext& ctx) {
  auto o = std::make_shared<ExplainOptions>();
  auto* cmd = snapshot.add_subcommand(
      "explain",
      "show what a snapshot of a folder holds: included files, paths left out and the rule that "
      "left each out, the largest files, totals against the limits (reads no file)");
  cmd->add_option("dir", o->source_dir, "the source folder (default: .)");
  cmd->add_option("--largest", o->largest, "how many of the largest files to show (default 10)")
      ->check(AtLeast(0));
  AddSnapshotLimitOptions(*cmd, o->limits);
  cmd->callback(
      [&ctx, o] { ctx.action = [&ctx, o] { return RunSnapshotExplain(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
