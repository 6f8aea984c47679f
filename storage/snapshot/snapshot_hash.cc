// The hashing half of BuildSnapshot (snapshot.h): every file the walk found,
// from the stat cache or read on all cores — hashed only, or hashed and
// stored into the CAS in the same read (BuildOptions::store).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/fs_identity.h"
#include "base/parallel.h"
#include "base/status_macros.h"
#include "storage/snapshot/snapshot_names.h"
#include "storage/snapshot/walk_internal.h"

namespace amld::storage::internal {
namespace {

using snapshot_names::Annotate;
using snapshot_names::Quote;

constexpr size_t kCopyChunk = 128 * 1024;  // read buffer of a file being hashed

bool SameStat(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

struct HashedFile {
  Digest digest;
  struct stat st;       // as opened, before reading
  bool stable = false;  // unchanged while it was read: safe to cache
};

absl::Status CannotRead(const PendingFile& f, int err, std::string_view op) {
  return Annotate(base::ErrnoStatus(err, op, f.abs_path),
                  absl::StrCat("cannot read ", Quote(f.rel_path),
                               " (fix its permissions or list it in .amlignore)"));
}

// O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a fifo after the
// walk is neither followed nor waited on. Opened as `read_as` (only the open
// is checked against it: reading an open fd needs no further right, and what
// the store writes must stay the daemon's).
absl::StatusOr<base::ScopedFd> OpenToRead(const PendingFile& f, const base::FsIdentity* read_as,
                                          struct stat* st) {
  base::ScopedFd fd;
  int err = 0;
  {
    AMLD_ASSIGN_OR_RETURN(base::ScopedFsIdentity as, base::ScopedFsIdentity::Take(read_as));
    fd = base::ScopedFd(::open(f.abs_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    err = errno;
  }
  if (!fd.valid() && err == ENOENT) {
    return absl::AbortedError(absl::StrCat(
        Quote(f.rel_path), " disappeared while the snapshot was taken; take it again"));
  }
  if (!fd.valid()) return CannotRead(f, err, "open");
  if (::fstat(fd.get(), st) != 0) return CannotRead(f, errno, "fstat");
  if (!S_ISREG(st->st_mode)) {
    return absl::AbortedError(absl::StrCat(Quote(f.rel_path),
                                           " stopped being a regular file while the snapshot was "
                                           "taken; take it again"));
  }
  return fd;
}

absl::StatusOr<HashedFile> HashFile(const PendingFile& f, const BuildOptions& options,
                                    std::vector<char>& buf) {
  HashedFile out;
  AMLD_ASSIGN_OR_RETURN(base::ScopedFd fd, OpenToRead(f, options.read_as, &out.st));
  int64_t total = 0;
  if (options.store != nullptr) {
    absl::StatusOr<Digest> stored =
        options.store->PutOpenFile(fd.get(), f.rel_path, options.store_durability);
    if (!stored.ok()) {
      return Annotate(stored.status(), absl::StrCat("cannot store ", Quote(f.rel_path)));
    }
    out.digest = *stored;
    total = stored->size;
  } else {
    Sha256 h;
    for (;;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return CannotRead(f, errno, "read");
      }
      if (n == 0) break;
      h.Update(buf.data(), static_cast<size_t>(n));
      total += n;
    }
    out.digest = Digest{h.FinishHex(), total};
  }
  struct stat after;
  out.stable = ::fstat(fd.get(), &after) == 0 && SameStat(out.st, after) && total == after.st_size;
  return out;
}

}  // namespace

absl::StatusOr<HashedFiles> HashAll(const std::vector<PendingFile>& files,
                                    const BuildOptions& options) {
  HashedFiles result;
  std::vector<Digest>& digests = result.digests;
  digests.resize(files.size());
  std::vector<size_t> to_hash;
  std::vector<size_t> hits;
  // The cache is only touched from this thread, so it need not be thread-safe.
  for (size_t i = 0; i < files.size(); ++i) {
    std::optional<Digest> hit;
    if (options.cache != nullptr) hit = options.cache->Lookup(files[i].rel_path, files[i].st);
    if (hit && hit->size == files[i].st.st_size && ValidateDigest(*hit).ok()) {
      digests[i] = *hit;
      hits.push_back(i);
    } else {
      to_hash.push_back(i);
    }
  }
  if (options.store != nullptr && !hits.empty()) {
    // A file the cache knows may be gone from the store (a collection): read
    // it again. FindMissing also keeps what is present from the next one.
    std::vector<Digest> known;
    known.reserve(hits.size());
    for (size_t i : hits) known.push_back(digests[i]);
    std::vector<Digest> missing = options.store->FindMissing(known);
    if (!missing.empty()) {
      absl::flat_hash_set<Digest> gone(missing.begin(), missing.end());
      for (size_t i : hits) {
        if (gone.contains(digests[i])) to_hash.push_back(i);
      }
    }
  }
  std::vector<HashedFile> hashed(to_hash.size());
  AMLD_RETURN_IF_ERROR(base::ParallelFor(
      to_hash.size(), base::ResolveThreads(options.threads), [&](size_t k) -> absl::Status {
        thread_local std::vector<char> buf(kCopyChunk);
        AMLD_ASSIGN_OR_RETURN(hashed[k], HashFile(files[to_hash[k]], options, buf));
        return absl::OkStatus();
      }));
  for (size_t k = 0; k < to_hash.size(); ++k) {
    const PendingFile& f = files[to_hash[k]];
    digests[to_hash[k]] = hashed[k].digest;
    if (options.cache != nullptr && hashed[k].stable) {
      options.cache->Store(f.rel_path, hashed[k].st, hashed[k].digest);
    }
  }
  result.files_read = static_cast<int64_t>(to_hash.size());
  return result;
}

}  // namespace amld::storage::internal
