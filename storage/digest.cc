#include "storage/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "amld/v1/common.pb.h"
#include "base/file_util.h"

namespace amld::storage {

std::string Digest::ToString() const { return absl::StrCat(hash, "/", size); }

const Digest& Digest::Empty() {
  static const Digest* empty = new Digest{
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0};
  return *empty;
}

absl::Status ValidateDigest(const Digest& d) {
  if (d.hash.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "digest hash must be 64 lower-case hex characters, got ", d.hash.size(),
        " characters: \"", d.hash.substr(0, 80), "\""));
  }
  for (char c : d.hash) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "digest hash must be lower-case hex, got \"", d.hash, "\""));
    }
  }
  if (d.size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest size must not be negative, got ", d.size));
  }
  return absl::OkStatus();
}

Digest FromProto(const amld::v1::Digest& proto) {
  return Digest{proto.hash(), proto.size_bytes()};
}

void ToProto(const Digest& d, amld::v1::Digest* proto) {
  proto->set_hash(d.hash);
  proto->set_size_bytes(d.size);
}

amld::v1::Digest ToProto(const Digest& d) {
  amld::v1::Digest proto;
  ToProto(d, &proto);
  return proto;
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}

Sha256::~Sha256() = default;

void Sha256::Update(const void* data, size_t size) {
  EVP_DigestUpdate(impl_->ctx, data, size);
  size_ += static_cast<int64_t>(size);
}

std::string Sha256::FinishHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return out;
}

Digest DigestOf(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return Digest{h.FinishHex(), static_cast<int64_t>(data.size())};
}

absl::StatusOr<Digest> DigestOfFile(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return base::ErrnoStatus(errno, "open", path);
  base::ScopedFd closer(fd);
  Sha256 h;
  std::vector<char> buf(128 * 1024);
  int64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
    total += n;
  }
  return Digest{h.FinishHex(), total};
}

}  // namespace amld::storage
