#include "storage/snapshot/stat_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "AMLDSTC2";
constexpr size_t kHashBytes = 32;
// Fixed part of one entry after its path.
constexpr size_t kEntryFixedBytes = 8 + 8 + 8 + 8 + 4 + kHashBytes;
// A path longer than PATH_MAX cannot come from a walk: a sign of corruption.
constexpr uint32_t kMaxPathBytes = 4096;
constexpr uint32_t kMaxDaemonIdBytes = 8192;

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// Bounds-checked reads from the loaded bytes; any short read marks the whole
// file bad.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <typename T>
  bool Get(T* v) {
    if (data_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (data_.size() - pos_ < n) return false;
    out->assign(data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

std::string RawSha256(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return absl::HexStringToBytes(h.FinishHex());
}

}  // namespace

FileStamp StatCache::StampOf(const struct stat& st) {
  FileStamp s = FileStamp::Of(st);
  s.device = 0;
  return s;
}

StatCache StatCache::Load(const fs::path& file) {
  StatCache cache;
  absl::StatusOr<std::string> bytes = base::ReadFileToString(file);
  if (!bytes.ok()) {
    if (!absl::IsNotFound(bytes.status())) {
      cache.load_problem_ = std::string(bytes.status().message());
    }
    return cache;
  }
  auto bad = [&](std::string_view why) {
    cache.entries_.clear();
    cache.load_problem_ =
        absl::StrCat("ignoring the stat cache ", file.string(), ": ", std::string(why));
    return std::move(cache);
  };
  if (bytes->size() < kMagic.size() + 8 + kHashBytes ||
      std::string_view(*bytes).substr(0, kMagic.size()) != kMagic) {
    return bad("not a stat cache of this version");
  }
  const std::string_view body(bytes->data(), bytes->size() - kHashBytes);
  if (RawSha256(body) != std::string_view(*bytes).substr(body.size())) {
    return bad("its checksum does not match (corrupt or cut short)");
  }
  Reader r(body.substr(kMagic.size()));
  uint64_t count = 0;
  if (!r.Get(&count) || count > r.remaining() / kEntryFixedBytes) return bad("bad entry count");
  cache.entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    std::string path;
    Entry e;
    if (!r.Get(&len) || len == 0 || len > kMaxPathBytes || !r.Bytes(len, &path) ||
        !r.Get(&e.stamp.size) || !r.Get(&e.stamp.mtime_ns) || !r.Get(&e.stamp.ctime_ns) ||
        !r.Get(&e.stamp.inode) || !r.Get(&e.stamp.mode) || !r.Bytes(kHashBytes, &e.hash_bytes) ||
        e.stamp.size < 0) {
      return bad(absl::StrCat("entry ", i, " is malformed"));
    }
    cache.entries_.insert_or_assign(std::move(path), std::move(e));
  }
  uint32_t id_len = 0;
  uint64_t dirs = 0;
  if (!r.Get(&id_len) || id_len > kMaxDaemonIdBytes || !r.Bytes(id_len, &cache.uploaded_daemon_) ||
      !r.Get(&dirs) || dirs > r.remaining() / (kHashBytes + 8)) {
    return bad("bad uploaded tree");
  }
  cache.uploaded_dirs_.reserve(dirs);
  for (uint64_t i = 0; i < dirs; ++i) {
    std::string raw;
    Digest d;
    if (!r.Bytes(kHashBytes, &raw) || !r.Get(&d.size) || d.size < 0) {
      return bad(absl::StrCat("uploaded folder ", i, " is malformed"));
    }
    d.hash = absl::BytesToHexString(raw);
    cache.uploaded_dirs_.insert(std::move(d));
  }
  if (!r.AtEnd()) return bad("trailing bytes after the entries");
  cache.loaded_ = cache.entries_.size();
  return cache;
}

std::optional<Digest> StatCache::Lookup(const std::string& rel_path, const struct stat& st) {
  auto it = entries_.find(rel_path);
  if (it == entries_.end() || it->second.stamp != StampOf(st)) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  if (!it->second.touched) ++loaded_touched_;
  it->second.touched = true;
  return Digest{absl::BytesToHexString(it->second.hash_bytes), it->second.stamp.size};
}

void StatCache::Store(const std::string& rel_path, const struct stat& st, const Digest& d) {
  if (!ValidateDigest(d).ok() || d.size != st.st_size) return;
  Entry e;
  e.stamp = StampOf(st);
  e.hash_bytes = absl::HexStringToBytes(d.hash);
  e.touched = true;
  entries_.insert_or_assign(rel_path, std::move(e));
  changed_ = true;
}

absl::Status StatCache::Save(const fs::path& file, absl::Time walk_started) const {
  // Every loaded entry still holds and nothing was added: the file is as it
  // should be (its entries were not racy when written, and are not now).
  if (!changed_ && loaded_touched_ == loaded_ && loaded_ > 0) return absl::OkStatus();
  std::string out(kMagic);
  Put<uint64_t>(out, 0);  // patched below
  uint64_t count = 0;
  for (const auto& [path, e] : entries_) {
    if (!e.touched || !e.stamp.TrustedFor(walk_started)) continue;
    Put<uint32_t>(out, static_cast<uint32_t>(path.size()));
    out.append(path);
    Put(out, e.stamp.size);
    Put(out, e.stamp.mtime_ns);
    Put(out, e.stamp.ctime_ns);
    Put(out, e.stamp.inode);
    Put(out, e.stamp.mode);
    out.append(e.hash_bytes);
    ++count;
  }
  std::memcpy(out.data() + kMagic.size(), &count, sizeof count);
  Put<uint32_t>(out, static_cast<uint32_t>(uploaded_daemon_.size()));
  out.append(uploaded_daemon_);
  Put<uint64_t>(out, uploaded_daemon_.empty() ? 0 : uploaded_dirs_.size());
  if (!uploaded_daemon_.empty()) {
    for (const Digest& d : uploaded_dirs_) {
      out.append(absl::HexStringToBytes(d.hash));
      Put(out, d.size);
    }
  }
  out.append(RawSha256(out));
  std::error_code ec;
  // Private: paths in it tell what the user works on.
  if (fs::create_directories(file.parent_path(), ec)) ::chmod(file.parent_path().c_str(), 0700);
  if (ec) return base::ErrnoStatus(ec.value(), "mkdir", file.parent_path());
  const fs::path tmp = absl::StrCat(file.string(), ".tmp.", ::getpid());
  {
    base::ScopedFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return base::ErrnoStatus(errno, "create", tmp);
    absl::Status written = base::WriteAll(fd.get(), out, tmp);
    if (!written.ok()) {
      ::unlink(tmp.c_str());
      return written;
    }
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return base::ErrnoStatus(err, "rename", file);
  }
  return absl::OkStatus();
}

void StatCache::SetUploadedTree(std::string daemon_id, absl::flat_hash_set<Digest> dirs) {
  if (daemon_id.size() > kMaxDaemonIdBytes) daemon_id.clear();
  if (daemon_id == uploaded_daemon_ && dirs == uploaded_dirs_) return;
  changed_ = true;
  uploaded_daemon_ = std::move(daemon_id);
  uploaded_dirs_ = std::move(dirs);
  absl::erase_if(uploaded_dirs_, [](const Digest& d) { return !ValidateDigest(d).ok(); });
}

const absl::flat_hash_set<Digest>* StatCache::UploadedTree(const std::string& daemon_id) const {
  if (daemon_id.empty() || daemon_id != uploaded_daemon_) return nullptr;
  return &uploaded_dirs_;
}

fs::path DefaultStatCacheDir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return fs::path(xdg) / "amld";
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr && home[0] != '\0' ? home : "/tmp") / ".cache" / "amld";
}

fs::path StatCacheFileFor(const fs::path& cache_dir, const fs::path& source_root) {
  std::error_code ec;
  fs::path abs = fs::absolute(source_root, ec);
  if (ec) abs = source_root;
  abs = abs.lexically_normal();
  if (!abs.has_filename() && abs.has_parent_path()) abs = abs.parent_path();  // "/a/b/"
  Sha256 h;
  h.Update(abs.string());
  return cache_dir / absl::StrCat("stat-", h.FinishHex().substr(0, 32), ".bin");
}

}  // namespace amld::storage
