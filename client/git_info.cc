#include "client/git_info.h"

#include <git2.h>

#include <memory>
#include <mutex>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace amld::client {
namespace {

template <typename T, void (*Free)(T*)>
struct GitDeleter {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using GitPtr = std::unique_ptr<T, GitDeleter<T, Free>>;

using Repo = GitPtr<git_repository, git_repository_free>;
using Remote = GitPtr<git_remote, git_remote_free>;
using Reference = GitPtr<git_reference, git_reference_free>;
using StatusList = GitPtr<git_status_list, git_status_list_free>;

absl::Status GitError(std::string_view what, const std::filesystem::path& dir) {
  const git_error* e = git_error_last();
  return absl::InternalError(absl::StrCat("cannot read the git state of ", dir.string(), ": ",
                                          std::string(what), ": ",
                                          e != nullptr ? e->message : "unknown libgit2 error"));
}

void InitLibgit2Once() {
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });
}

std::string OriginUrl(git_repository* repo) {
  git_remote* raw = nullptr;
  if (git_remote_lookup(&raw, repo, "origin") != 0) return "";
  Remote remote(raw);
  const char* url = git_remote_url(remote.get());
  return url != nullptr ? url : "";
}

// Branch and commit of HEAD; an unborn branch has a name but no commit.
absl::Status ReadHead(git_repository* repo, const std::filesystem::path& dir,
                      amld::v1::GitInfo* info) {
  git_reference* raw = nullptr;
  int rc = git_repository_head(&raw, repo);
  if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) {
    git_reference* head = nullptr;
    if (git_reference_lookup(&head, repo, "HEAD") == 0) {
      Reference ref(head);
      if (const char* target = git_reference_symbolic_target(ref.get())) {
        std::string t = target;
        const std::string prefix = "refs/heads/";
        info->set_branch(t.rfind(prefix, 0) == 0 ? t.substr(prefix.size()) : t);
      }
    }
    return absl::OkStatus();
  }
  if (rc != 0) return GitError("read HEAD", dir);
  Reference head(raw);
  if (git_repository_head_detached(repo) != 1 && git_reference_is_branch(head.get())) {
    info->set_branch(git_reference_shorthand(head.get()));
  }
  const git_oid* oid = git_reference_target(head.get());
  if (oid != nullptr) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), oid);
    info->set_commit(hex);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> IsDirty(git_repository* repo, const std::filesystem::path& dir) {
  git_status_options opts;
  git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
  // Limit to the source folder when it is below the work tree's top.
  std::string pathspec;
  char* pathspec_ptr = nullptr;
  if (const char* workdir = git_repository_workdir(repo)) {
    std::error_code ec;
    auto top = std::filesystem::weakly_canonical(workdir, ec);
    auto here = std::filesystem::weakly_canonical(dir, ec);
    auto rel = here.lexically_relative(top);
    if (!rel.empty() && rel != "." && *rel.begin() != "..") {
      pathspec = rel.string();
      pathspec_ptr = pathspec.data();
      opts.pathspec.strings = &pathspec_ptr;
      opts.pathspec.count = 1;
    }
  }
  git_status_list* raw = nullptr;
  if (git_status_list_new(&raw, repo, &opts) != 0) return GitError("compute status", dir);
  StatusList list(raw);
  return git_status_list_entrycount(list.get()) > 0;
}

// Whether `dir` or a folder above it has a `.git` entry. Checked first so a
// folder outside any repository costs a few stats, not libgit2's start-up
// (which loads the system's CA certificates).
bool InsideGitWorkTree(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec);
  if (ec) return true;  // let libgit2 decide
  for (;;) {
    if (std::filesystem::exists(p / ".git", ec)) return true;
    if (!p.has_relative_path()) return false;
    p = p.parent_path();
  }
}

}  // namespace

absl::StatusOr<std::optional<amld::v1::GitInfo>> ReadGitInfo(const std::filesystem::path& dir) {
  if (!InsideGitWorkTree(dir)) return std::nullopt;
  InitLibgit2Once();
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, dir.c_str(), 0, nullptr);
  if (rc == GIT_ENOTFOUND) return std::nullopt;
  if (rc != 0) return GitError("open the repository", dir);
  Repo repo(raw);
  if (git_repository_is_bare(repo.get())) return std::nullopt;
  amld::v1::GitInfo info;
  info.set_repository_uri(OriginUrl(repo.get()));
  if (absl::Status st = ReadHead(repo.get(), dir, &info); !st.ok()) return st;
  auto dirty = IsDirty(repo.get(), dir);
  if (!dirty.ok()) return dirty.status();
  info.set_dirty(*dirty);
  return info;
}

}  // namespace amld::client
