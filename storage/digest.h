// Content digests: SHA-256 of a blob plus its size, the identity of every
// object in the content-addressed store (see proto amld.v1.Digest).
//
// Thread-safety: Digest is a value type; Sha256 is thread-compatible (one
// instance per thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace amld::v1 {
class Digest;
}

namespace amld::storage {

struct Digest {
  std::string hash;  // 64 lower-case hex characters
  int64_t size = 0;

  // "hash/size", the form used in messages and logs.
  std::string ToString() const;
  // Digest of the empty blob.
  static const Digest& Empty();

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.hash, d.size);
  }
};

// OK when `hash` is 64 lower-case hex characters and size >= 0.
absl::Status ValidateDigest(const Digest& d);

Digest FromProto(const amld::v1::Digest& proto);
void ToProto(const Digest& d, amld::v1::Digest* proto);
amld::v1::Digest ToProto(const Digest& d);

// Streaming SHA-256 (OpenSSL EVP, which uses the CPU's SHA extensions).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Lower-case hex of the digest; the hasher cannot be updated afterwards.
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t size_ = 0;
};

// The digest of an in-memory blob.
Digest DigestOf(std::string_view data);
// The digest of a file's content, read in 128 KiB chunks.
absl::StatusOr<Digest> DigestOfFile(const std::filesystem::path& path);

}  // namespace amld::storage
