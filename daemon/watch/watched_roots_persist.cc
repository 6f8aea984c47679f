// WatchedRoots (watched_roots.h): the state file that keeps registered roots
// across restarts — "<registered, unix seconds> [<owner uid>:<gid> ]<C-escaped
// absolute path>" per line (the owner only for a root read as a user:
// system mode), written atomically (mode 0600). Files without owners load.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_util.h"
#include "daemon/watch/watched_roots_internal.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {

absl::Status WatchedRoots::LoadRegistered() {
  if (options_.state_file.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> text = amld::base::ReadFileToString(options_.state_file);
  if (!text.ok()) return absl::IsNotFound(text.status()) ? absl::OkStatus() : text.status();
  absl::MutexLock lock(&mu_);
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> fields =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    int64_t registered = 0;
    std::string path;
    std::optional<RootOwner> owner;
    bool owner_ok = true;
    if (!fields.second.empty() && fields.second[0] != '/') {  // "<uid>:<gid> <path>"
      std::pair<absl::string_view, absl::string_view> rest =
          absl::StrSplit(fields.second, absl::MaxSplits(' ', 1));
      std::pair<absl::string_view, absl::string_view> ids =
          absl::StrSplit(rest.first, absl::MaxSplits(':', 1));
      RootOwner o;
      owner_ok = absl::SimpleAtoi(ids.first, &o.uid) && absl::SimpleAtoi(ids.second, &o.gid);
      owner = o;
      fields.second = rest.second;
    }
    if (!owner_ok || !absl::SimpleAtoi(fields.first, &registered) ||
        !absl::CUnescape(fields.second, &path) || path.empty() || path[0] != '/') {
      if (deps_.log) deps_.log->warn("ignoring a bad line of {}", options_.state_file.string());
      continue;
    }
    if (absl::Status inside = CheckNotInDataDir(path); !inside.ok()) {
      // Registered by an amld that did not refuse it: dropped, not resumed.
      if (deps_.log) deps_.log->warn("no longer watching: {}", std::string(inside.message()));
      continue;
    }
    std::shared_ptr<Root> r = NewRoot(path, owner);
    r->registered = absl::FromUnixSeconds(registered);
    roots_[path] = r;
    RequestFullRescanLocked(*r, "daemon restart");
    settle_.Add(path, SettleDelays{absl::ZeroDuration(), options_.max_settle});  // due now
  }
  return absl::OkStatus();
}

absl::Status WatchedRoots::Persist() {
  if (options_.state_file.empty()) return absl::OkStatus();
  absl::MutexLock persist(&persist_mu_);
  std::vector<std::pair<std::string, std::string>> roots;  // path, its line
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [path, r] : roots_) {
      if (r->automatic) continue;
      const std::string owner =
          r->owner ? absl::StrCat(r->owner->uid, ":", r->owner->gid, " ") : std::string();
      roots.emplace_back(path, absl::StrCat(absl::ToUnixSeconds(r->registered), " ", owner,
                                            absl::CEscape(path), "\n"));
    }
  }
  std::sort(roots.begin(), roots.end());
  std::string text;
  for (const auto& [path, line] : roots) absl::StrAppend(&text, line);
  return amld::base::WriteFileAtomically(options_.state_file, text, 0600);
}

}  // namespace amld::daemon
