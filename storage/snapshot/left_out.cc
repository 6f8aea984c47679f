// CheckLeftOut and WhyLeftOut (snapshot.h): the one decision, shared by the
// walk and the daemon's watched roots, of which paths stay out of a snapshot
// besides what the ignore files say.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/snapshot/snapshot.h"

namespace amld::storage {

IgnoreDecision CheckLeftOut(const IgnoreRules* rules, std::string_view rel, std::string_view name,
                            bool is_dir) {
  // `.git` is git's own metadata whatever its type (a worktree or submodule
  // has a `.git` file), and is skipped even when ignore files are not read.
  if (name == ".git") {
    return IgnoreDecision{true, std::string(kBuiltinRuleSource), 0, is_dir ? ".git/" : ".git"};
  }
  // The daemon's sync cookies (daemon/watch/watched_roots.h) live for a
  // moment in watched roots; a walk must agree with the daemon's tree.
  if (name.starts_with(".amld-cookie-")) {
    return IgnoreDecision{true, std::string(kBuiltinRuleSource), 0, ".amld-cookie-*"};
  }
  IgnoreDecision d = rules != nullptr ? rules->Check(rel, is_dir) : IgnoreDecision{};
  // A run's outputs/ and logs/ are the folders it writes into (its cwd is the
  // snapshot's root), and what they hold after the run is stored as its
  // artifacts. The same folders left in the source by a local try would make
  // a run list, and let people download, files it never wrote; so they stay
  // out unless a rule of the root's ignore file keeps them ("!/outputs/").
  if ((rel == kRunOutputsFolder || rel == kRunLogsFolder) && !d.ignored &&
      !d.pattern.starts_with("!")) {
    return IgnoreDecision{true, std::string(kDefaultRuleSource), 0,
                          absl::StrCat("/", std::string(rel), is_dir ? "/" : "")};
  }
  return d;
}

std::string WhyLeftOut(const IgnoreDecision& d) {
  if (d.source == kBuiltinRuleSource) return absl::StrCat("always left out (", d.pattern, ")");
  if (d.source == kDefaultRuleSource) {
    return absl::StrCat("left out by default: a run's ", d.pattern.substr(1),
                        " holds only what the run writes (a line \"!", d.pattern,
                        "\" in .amlignore keeps it)");
  }
  return absl::StrCat("ignored by ", d.source, ":", d.line, " (", d.pattern, ")");
}

}  // namespace amld::storage
