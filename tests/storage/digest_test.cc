#include "storage/digest.h"

#include <gtest/gtest.h>

#include <fstream>

#include "amld/v1/common.pb.h"

namespace amld::storage {
namespace {

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(DigestOf(""), Digest::Empty());
  EXPECT_EQ(DigestOf("abc").hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(DigestOf("abc").size, 3);
}

TEST(DigestTest, StreamingEqualsOneShot) {
  std::string data(300000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  Sha256 h;
  h.Update(data.substr(0, 7));
  h.Update(data.substr(7));
  EXPECT_EQ(h.FinishHex(), DigestOf(data).hash);
}

TEST(DigestTest, FileDigest) {
  auto path = std::filesystem::path(::testing::TempDir()) / "digest_test_file";
  std::string data(200000, 'q');
  std::ofstream(path, std::ios::binary) << data;
  auto d = DigestOfFile(path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, DigestOf(data));
  EXPECT_EQ(DigestOfFile(path.string() + ".missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DigestTest, Validate) {
  EXPECT_TRUE(ValidateDigest(Digest::Empty()).ok());
  EXPECT_FALSE(ValidateDigest(Digest{"abc", 3}).ok());
  Digest upper = DigestOf("abc");
  upper.hash[0] = 'B';
  EXPECT_FALSE(ValidateDigest(upper).ok());
  Digest negative = DigestOf("abc");
  negative.size = -1;
  EXPECT_FALSE(ValidateDigest(negative).ok());
}

TEST(DigestTest, ProtoRoundTrip) {
  Digest d = DigestOf("hello");
  EXPECT_EQ(FromProto(ToProto(d)), d);
}

}  // namespace
}  // namespace amld::storage
