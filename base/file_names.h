// File names as the kernel has them: any bytes but '/' and NUL, not
// necessarily UTF-8 — and the one printable, lossless text form amld shows
// them in (aml run files, messages, JSON).
//
// Proto3 `string` fields must hold UTF-8 (a parser refuses anything else),
// so a name that is not travels in a `bytes` field beside its `string`
// (e.g. RunFile.path_bytes), with the string holding EscapeName's form.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace amld::base {

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view s);

// `raw` in a form safe to print and to put in a proto3 string: '\' becomes
// "\\", control characters (C0, DEL, C1) and bytes that are not part of
// valid UTF-8 become "\xHH"; everything else is kept. Lossless:
// UnescapeName(EscapeName(x)) == x for every x.
std::string EscapeName(std::string_view raw);

// The bytes EscapeName(bytes) == `shown`; nullopt when `shown` holds a '\'
// that is not one of its escapes.
std::optional<std::string> UnescapeName(std::string_view shown);

}  // namespace amld::base
