#include "client/git_info.h"

#include <dlfcn.h>
#include <git2.h>

#include <memory>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace amld::client {
namespace {

// libgit2 is loaded with dlopen on the first folder that is inside a work
// tree, not linked: with its dependencies (Kerberos, mbedTLS, libssh2, ...)
// it is 14 shared libraries, which cost every `aml` command about 1 ms of
// dynamic loading although most never look at git.
// clang-format off
#define AMLD_LIBGIT2_FUNCTIONS(X)       \
  X(git_libgit2_init)                   \
  X(git_error_last)                     \
  X(git_repository_open_ext)            \
  X(git_repository_free)                \
  X(git_repository_is_bare)             \
  X(git_repository_head)                \
  X(git_repository_head_detached)       \
  X(git_repository_workdir)             \
  X(git_remote_lookup)                  \
  X(git_remote_url)                     \
  X(git_remote_free)                    \
  X(git_reference_lookup)               \
  X(git_reference_symbolic_target)      \
  X(git_reference_is_branch)            \
  X(git_reference_shorthand)            \
  X(git_reference_target)               \
  X(git_reference_free)                 \
  X(git_oid_tostr)                      \
  X(git_status_options_init)            \
  X(git_status_list_new)                \
  X(git_status_list_entrycount)         \
  X(git_status_list_free)
// clang-format on

struct Libgit2 {
#define AMLD_DECLARE_POINTER(name) decltype(&::name) name = nullptr;
  AMLD_LIBGIT2_FUNCTIONS(AMLD_DECLARE_POINTER)
#undef AMLD_DECLARE_POINTER
};

// The loaded and initialized library, or why it could not be loaded; loaded
// once per process (thread-safe: a function-local static).
const absl::StatusOr<Libgit2>& LoadLibgit2() {
  static const absl::StatusOr<Libgit2> loaded = []() -> absl::StatusOr<Libgit2> {
    void* handle = ::dlopen(AMLD_LIBGIT2_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot load ", AMLD_LIBGIT2_SONAME, " (",
                                                 ::dlerror(), "); install the libgit2 package"));
    }
    Libgit2 lib;
#define AMLD_RESOLVE(name)                                                             \
  lib.name = reinterpret_cast<decltype(&::name)>(::dlsym(handle, #name));              \
  if (lib.name == nullptr) {                                                           \
    return absl::UnavailableError(absl::StrCat(AMLD_LIBGIT2_SONAME, " lacks " #name)); \
  }
    AMLD_LIBGIT2_FUNCTIONS(AMLD_RESOLVE)
#undef AMLD_RESOLVE
    lib.git_libgit2_init();
    return lib;  // the handle stays open for the process's life
  }();
  return loaded;
}

// The library for the functions below; only called after LoadLibgit2 succeeded.
const Libgit2& Git() { return *LoadLibgit2(); }

template <typename T>
struct GitDeleter {
  void (*free)(T*);
  void operator()(T* p) const { free(p); }
};
template <typename T>
using GitPtr = std::unique_ptr<T, GitDeleter<T>>;

using Repo = GitPtr<git_repository>;
using Remote = GitPtr<git_remote>;
using Reference = GitPtr<git_reference>;
using StatusList = GitPtr<git_status_list>;

Repo OwnRepo(git_repository* p) { return Repo(p, {Git().git_repository_free}); }
Remote OwnRemote(git_remote* p) { return Remote(p, {Git().git_remote_free}); }
Reference OwnReference(git_reference* p) { return Reference(p, {Git().git_reference_free}); }
StatusList OwnStatusList(git_status_list* p) { return StatusList(p, {Git().git_status_list_free}); }

absl::Status GitError(std::string_view what, const std::filesystem::path& dir) {
  const git_error* e = Git().git_error_last();
  return absl::InternalError(absl::StrCat("cannot read the git state of ", dir.string(), ": ",
                                          std::string(what), ": ",
                                          e != nullptr ? e->message : "unknown libgit2 error"));
}

std::string OriginUrl(git_repository* repo) {
  git_remote* raw = nullptr;
  if (Git().git_remote_lookup(&raw, repo, "origin") != 0) return "";
  Remote remote = OwnRemote(raw);
  const char* url = Git().git_remote_url(remote.get());
  return url != nullptr ? url : "";
}

// Branch and commit of HEAD; an unborn branch has a name but no commit.
absl::Status ReadHead(git_repository* repo, const std::filesystem::path& dir,
                      amld::v1::GitInfo* info) {
  git_reference* raw = nullptr;
  int rc = Git().git_repository_head(&raw, repo);
  if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) {
    git_reference* head = nullptr;
    if (Git().git_reference_lookup(&head, repo, "HEAD") == 0) {
      Reference ref = OwnReference(head);
      if (const char* target = Git().git_reference_symbolic_target(ref.get())) {
        std::string t = target;
        const std::string prefix = "refs/heads/";
        info->set_branch(t.rfind(prefix, 0) == 0 ? t.substr(prefix.size()) : t);
      }
    }
    return absl::OkStatus();
  }
  if (rc != 0) return GitError("read HEAD", dir);
  Reference head = OwnReference(raw);
  if (Git().git_repository_head_detached(repo) != 1 && Git().git_reference_is_branch(head.get())) {
    info->set_branch(Git().git_reference_shorthand(head.get()));
  }
  const git_oid* oid = Git().git_reference_target(head.get());
  if (oid != nullptr) {
    char hex[GIT_OID_HEXSZ + 1];
    Git().git_oid_tostr(hex, sizeof(hex), oid);
    info->set_commit(hex);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> IsDirty(git_repository* repo, const std::filesystem::path& dir) {
  git_status_options opts;
  Git().git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
  // Limit to the source folder when it is below the work tree's top.
  std::string pathspec;
  char* pathspec_ptr = nullptr;
  if (const char* workdir = Git().git_repository_workdir(repo)) {
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
  if (Git().git_status_list_new(&raw, repo, &opts) != 0) return GitError("compute status", dir);
  StatusList list = OwnStatusList(raw);
  return Git().git_status_list_entrycount(list.get()) > 0;
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
  if (!LoadLibgit2().ok()) return LoadLibgit2().status();
  git_repository* raw = nullptr;
  int rc = Git().git_repository_open_ext(&raw, dir.c_str(), 0, nullptr);
  if (rc == GIT_ENOTFOUND) return std::nullopt;
  if (rc != 0) return GitError("open the repository", dir);
  Repo repo = OwnRepo(raw);
  if (Git().git_repository_is_bare(repo.get())) return std::nullopt;
  amld::v1::GitInfo info;
  info.set_repository_uri(OriginUrl(repo.get()));
  if (absl::Status st = ReadHead(repo.get(), dir, &info); !st.ok()) return st;
  auto dirty = IsDirty(repo.get(), dir);
  if (!dirty.ok()) return dirty.status();
  info.set_dirty(*dirty);
  return info;
}

}  // namespace amld::client
