#include "storage/snapshot/materialize.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/parallel.h"
#include "base/status_macros.h"
#include "storage/snapshot/directory_codec.h"
#include "storage/snapshot/snapshot_names.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;
using amld::v1::Directory;
using snapshot_names::Annotate;
using snapshot_names::kMaxTreeDepth;

constexpr size_t kCopyChunk = 128 * 1024;  // read/write buffer where copy_file_range cannot

// File systems (by st_dev of the destination) where FICLONE said "not
// supported": ext4 and tmpfs cost no extra syscall per file after the first.
std::mutex g_no_reflink_mu;
absl::flat_hash_set<dev_t> g_no_reflink_devices;

bool ReflinkUnsupported(int err) { return err == EOPNOTSUPP || err == ENOTTY || err == ENOSYS; }

bool ReflinkKnownUnsupported(dev_t dev) {
  std::lock_guard<std::mutex> lock(g_no_reflink_mu);
  return g_no_reflink_devices.contains(dev);
}

void NoteReflinkUnsupported(dev_t dev) {
  std::lock_guard<std::mutex> lock(g_no_reflink_mu);
  g_no_reflink_devices.insert(dev);
}

// Copies a CAS object into a new file. Never a hardlink: the run may write
// its files, and must not reach the store through them. A reflink shares
// blocks copy-on-write, so a write to the run's file leaves the object as it
// was.
absl::Status CopyBlobInto(const ContentStore& cas, const Digest& d, int out_fd,
                          const fs::path& out_path, std::atomic<bool>* try_reflink) {
  if (d == Digest::Empty()) return absl::OkStatus();
  fs::path object = cas.ObjectPath(d);
  base::ScopedFd in(::open(object.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) {
    return Annotate(base::ErrnoStatus(errno, "open", object),
                    absl::StrCat("blob ", d.ToString(), " for ", out_path.string()));
  }
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return base::ErrnoStatus(errno, "fstat", object);
  if (st.st_size != d.size) {
    return absl::DataLossError(absl::StrCat("stored object ", object.string(), " has ", st.st_size,
                                            " bytes, its digest says ", d.size));
  }
  if (try_reflink->load(std::memory_order_relaxed)) {
    if (::ioctl(out_fd, FICLONE, in.get()) == 0) return absl::OkStatus();
    if (ReflinkUnsupported(errno)) try_reflink->store(false, std::memory_order_relaxed);
  }
  int64_t copied = 0;
  while (copied < d.size) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out_fd, nullptr,
                                  static_cast<size_t>(d.size - copied), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // unsupported here (EXDEV, EINVAL, ...): read and write
    copied += n;
  }
  if (copied < d.size) {
    if (::lseek(in.get(), copied, SEEK_SET) < 0 || ::lseek(out_fd, copied, SEEK_SET) < 0) {
      return base::ErrnoStatus(errno, "lseek", out_path);
    }
    std::vector<char> buf(kCopyChunk);
    while (copied < d.size) {
      ssize_t n = ::read(in.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::ErrnoStatus(errno, "read", object);
      if (n == 0) break;
      AMLD_RETURN_IF_ERROR(base::WriteAll(out_fd, std::string_view(buf.data(), n), out_path));
      copied += n;
    }
  }
  if (copied != d.size) {
    return absl::DataLossError(
        absl::StrCat("stored object ", object.string(), " ended after ", copied, " bytes"));
  }
  return absl::OkStatus();
}

// Whether the process umask leaves 0755 and 0644 as they are (022 does),
// so files and folders need no fchmod after their creation: one metadata
// update less per file, which journaling file systems charge for. Read from
// /proc (umask(2) cannot be read without setting it, racing other threads).
bool UmaskKeepsModes() {
  absl::StatusOr<std::string> status = base::ReadFileToString("/proc/self/status");
  if (!status.ok()) return false;
  const size_t at = status->find("\nUmask:");
  if (at == std::string::npos) return false;
  const mode_t mask = static_cast<mode_t>(std::strtol(status->c_str() + at + 8, nullptr, 8));
  return (mask & 0755) == 0;
}

absl::Status MaterializeFile(const ContentStore& cas, const amld::v1::FileNode& f, int dirfd,
                             const fs::path& path, std::atomic<bool>* try_reflink,
                             bool needs_chmod) {
  const mode_t mode = f.is_executable() ? 0755 : 0644;
  base::ScopedFd out(::openat(dirfd, f.name().c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!out.valid()) return base::ErrnoStatus(errno, "create", path);
  if (needs_chmod && ::fchmod(out.get(), mode) != 0) return base::ErrnoStatus(errno, "chmod", path);
  return CopyBlobInto(cas, FromProto(f.digest()), out.get(), path, try_reflink);
}

// Recreates a tree: one thread walks it, creating folders and links, and
// hands the files (each with the fd of the folder this call made for it) to
// a pool that creates and copies them. Nothing is fsynced: a run folder
// lost in a crash is made again (recovery re-prepares PREPARING runs).
class TreeMaterializer {
 public:
  TreeMaterializer(const ContentStore& cas, int threads, dev_t dest_dev)
      : cas_(cas),
        threads_(threads),
        dest_dev_(dest_dev),
        try_reflink_(!ReflinkKnownUnsupported(dest_dev)) {}
  ~TreeMaterializer() {
    if (!try_reflink_.load()) NoteReflinkUnsupported(dest_dev_);
  }

  absl::Status Dir(const Digest& d, std::shared_ptr<base::ScopedFd> dirfd, const fs::path& path,
                   int depth) {
    AMLD_ASSIGN_OR_RETURN(Directory dir, ReadDirectory(cas_, d, depth));
    for (const amld::v1::FileNode& f : dir.files()) {
      jobs_.push_back(FileJob{dirfd, f, path / f.name()});
    }
    for (const amld::v1::SymlinkNode& l : dir.symlinks()) {
      if (::symlinkat(l.target().c_str(), dirfd->get(), l.name().c_str()) != 0) {
        return base::ErrnoStatus(errno, "symlink", path / l.name());
      }
    }
    if (!dir.files().empty()) ++dirs_held_;
    if (jobs_.size() >= kMaxQueuedFiles || dirs_held_ >= kMaxHeldDirs) {
      AMLD_RETURN_IF_ERROR(Flush());
    }
    for (const amld::v1::DirectoryNode& sub : dir.directories()) {
      fs::path sub_path = path / sub.name();
      if (depth + 1 > kMaxTreeDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat(sub_path.string(), ": tree nests deeper than ", kMaxTreeDepth, " levels"));
      }
      if (::mkdirat(dirfd->get(), sub.name().c_str(), 0755) != 0) {
        return base::ErrnoStatus(errno, "mkdir", sub_path);
      }
      auto fd = std::make_shared<base::ScopedFd>(::openat(
          dirfd->get(), sub.name().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd->valid()) return base::ErrnoStatus(errno, "open", sub_path);
      if (needs_chmod_ && ::fchmod(fd->get(), 0755) != 0) {
        return base::ErrnoStatus(errno, "chmod", sub_path);
      }
      AMLD_RETURN_IF_ERROR(Dir(FromProto(sub.digest()), std::move(fd), sub_path, depth + 1));
    }
    return absl::OkStatus();
  }

  // Creates the queued files and lets their folders' fds go.
  absl::Status Flush() {
    absl::Status s = base::ParallelFor(jobs_.size(), threads_, [this](size_t i) {
      const FileJob& j = jobs_[i];
      return MaterializeFile(cas_, j.node, j.dir->get(), j.path, &try_reflink_, needs_chmod_);
    });
    jobs_.clear();
    dirs_held_ = 0;
    return s;
  }

 private:
  // Bounds on what waits for the pool: memory, and open folder fds.
  static constexpr size_t kMaxQueuedFiles = 8192;
  static constexpr size_t kMaxHeldDirs = 64;

  struct FileJob {
    std::shared_ptr<base::ScopedFd> dir;
    amld::v1::FileNode node;
    fs::path path;
  };

  const ContentStore& cas_;
  int threads_;
  dev_t dest_dev_;
  const bool needs_chmod_ = !UmaskKeepsModes();
  std::atomic<bool> try_reflink_;
  std::vector<FileJob> jobs_;
  size_t dirs_held_ = 0;
};

absl::StatusOr<bool> IsEmptyDir(int fd, const fs::path& path) {
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return base::ErrnoStatus(errno, "dup", path);
  DIR* dir = ::fdopendir(dup);
  if (dir == nullptr) {
    ::close(dup);
    return base::ErrnoStatus(errno, "opendir", path);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") return false;
  }
  return true;
}

}  // namespace

absl::Status Materialize(const ContentStore& cas, const Digest& root, const fs::path& dest) {
  return Materialize(cas, root, dest, MaterializeOptions());
}

absl::Status Materialize(const ContentStore& cas, const Digest& root, const fs::path& dest,
                         const MaterializeOptions& options) {
  AMLD_RETURN_IF_ERROR(ValidateSnapshotRoot(root));
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) {
    return absl::Status(base::ErrnoStatus(ec.value(), "mkdir", dest).code(),
                        absl::StrCat("cannot create ", dest.string(), ": ", ec.message()));
  }
  base::ScopedFd fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return base::ErrnoStatus(errno, "open", dest);
  AMLD_ASSIGN_OR_RETURN(bool empty, IsEmptyDir(fd.get(), dest));
  if (!empty) {
    return absl::FailedPreconditionError(absl::StrCat("cannot materialize snapshot into ",
                                                      dest.string(), ": the folder is not empty"));
  }
  struct stat dest_st;
  if (::fstat(fd.get(), &dest_st) != 0) return base::ErrnoStatus(errno, "stat", dest);
  TreeMaterializer m(cas, base::ResolveThreads(options.threads), dest_st.st_dev);
  AMLD_RETURN_IF_ERROR(m.Dir(root, std::make_shared<base::ScopedFd>(fd.release()), dest, 0));
  return m.Flush();
}

}  // namespace amld::storage
