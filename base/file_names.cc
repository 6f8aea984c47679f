#include "base/file_names.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace amld::base {
namespace {

// Length of the well-formed UTF-8 sequence at s[i], 0 when there is none.
size_t Utf8SequenceAt(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceAt(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string EscapeName(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  auto hex = [&out](unsigned char b) { absl::StrAppendFormat(&out, "\\x%02x", b); };
  for (size_t i = 0; i < raw.size();) {
    const unsigned char c = static_cast<unsigned char>(raw[i]);
    const size_t len = Utf8SequenceAt(raw, i);
    if (c == '\\') {
      out += "\\\\";
    } else if (len == 0 || c < 0x20 || c == 0x7f) {
      hex(c);  // not UTF-8, or a C0 control / DEL
    } else if (len == 2 && c == 0xc2 && static_cast<unsigned char>(raw[i + 1]) < 0xa0) {
      hex(c);  // a C1 control (U+0080..U+009F): a terminal acts on it
      hex(static_cast<unsigned char>(raw[i + 1]));
    } else {
      out.append(raw.substr(i, len));
      i += len;
      continue;
    }
    i += (len == 2 && c == 0xc2) ? 2 : 1;
  }
  return out;
}

std::optional<std::string> UnescapeName(std::string_view shown) {
  std::string out;
  out.reserve(shown.size());
  for (size_t i = 0; i < shown.size(); ++i) {
    if (shown[i] != '\\') {
      out += shown[i];
      continue;
    }
    if (i + 1 < shown.size() && shown[i + 1] == '\\') {
      out += '\\';
      ++i;
      continue;
    }
    if (i + 3 < shown.size() && shown[i + 1] == 'x' && HexValue(shown[i + 2]) >= 0 &&
        HexValue(shown[i + 3]) >= 0) {
      out += static_cast<char>(HexValue(shown[i + 2]) * 16 + HexValue(shown[i + 3]));
      i += 3;
      continue;
    }
    return std::nullopt;
  }
  return out;
}

}  // namespace amld::base
