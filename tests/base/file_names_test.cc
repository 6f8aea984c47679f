#include "base/file_names.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace amld::base {
namespace {

TEST(FileNamesTest, Utf8IsCheckedStrictly) {
  EXPECT_TRUE(IsValidUtf8("plain.txt"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("bad\xff\xfe.txt"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // cut short
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

TEST(FileNamesTest, EscapedFormIsPrintable) {
  EXPECT_EQ(EscapeName("model.json"), "model.json");
  EXPECT_EQ(EscapeName("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(EscapeName("bad\xff\xfe.txt"), "bad\\xff\\xfe.txt");
  EXPECT_EQ(EscapeName("a\nb\x1b[31m\x7f"), "a\\x0ab\\x1b[31m\\x7f");
  EXPECT_EQ(EscapeName("back\\slash"), "back\\\\slash");
  EXPECT_EQ(EscapeName("c1\xc2\x9b"), "c1\\xc2\\x9b");  // CSI as a C1 control
  EXPECT_TRUE(IsValidUtf8(EscapeName("\xff\xc2")));
}

TEST(FileNamesTest, EscapeIsLosslessForAnyBytes) {
  std::mt19937 random(19);
  for (int i = 0; i < 20000; ++i) {
    std::string raw(random() % 12, '\0');
    for (char& c : raw) c = static_cast<char>(random() % 256);
    const std::string shown = EscapeName(raw);
    ASSERT_TRUE(IsValidUtf8(shown));
    auto back = UnescapeName(shown);
    ASSERT_TRUE(back.has_value());
    ASSERT_EQ(*back, raw);
  }
}

TEST(FileNamesTest, UnescapeRefusesAStrayBackslash) {
  EXPECT_EQ(UnescapeName("a\\x4A"), "aJ");
  EXPECT_FALSE(UnescapeName("a\\q").has_value());
  EXPECT_FALSE(UnescapeName("a\\x4").has_value());
  EXPECT_FALSE(UnescapeName("end\\").has_value());
}

}  // namespace
}  // namespace amld::base
