#include "daemon/web/web_access.h"

#include <sys/random.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace amld::daemon {
namespace {

constexpr size_t kTokenBytes = 32;

std::string RandomToken() {
  std::string bytes(kTokenBytes, '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    // getrandom only fails with EINTR once the pool is initialized, which it
    // is long before a daemon serves; retry.
  }
  return absl::BytesToHexString(bytes);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or "".
std::string CookieValue(absl::string_view header, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

}  // namespace

std::string WebTokens::TokenFor(uid_t uid) {
  absl::MutexLock lock(&mu_);
  std::string& token = tokens_[uid];
  if (token.empty()) token = RandomToken();
  return token;
}

std::optional<uid_t> WebTokens::UidOf(std::string_view token) const {
  absl::MutexLock lock(&mu_);
  std::optional<uid_t> found;
  for (const auto& [uid, known] : tokens_) {
    if (ConstantTimeEquals(token, known)) found = uid;
  }
  if (token.empty()) return std::nullopt;
  return found;
}

std::string WebCookieName(int port) { return absl::StrCat("amld_", port); }

WebAccess CheckWebAccess(const WebTokens& tokens, const WebRequestFacts& request, int port,
                         const std::vector<std::string>& hosts) {
  WebAccess access;
  const std::string host = absl::AsciiStrToLower(request.host);
  if (!hosts.empty() && std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
    access.kind = WebAccess::Kind::kForbiddenHost;
    return access;
  }
  if (!request.query_token.empty()) {
    std::optional<uid_t> uid = tokens.UidOf(request.query_token);
    if (!uid) return access;  // a wrong token in the link is 401, whatever the cookie says
    access.kind = WebAccess::Kind::kSetCookie;
    access.uid = *uid;
    access.set_cookie = absl::StrCat(WebCookieName(port), "=", request.query_token,
                                     "; Path=/; HttpOnly; SameSite=Strict");
    access.location = request.target_without_token.empty() ? "/" : request.target_without_token;
    return access;
  }
  std::optional<uid_t> uid =
      tokens.UidOf(CookieValue(request.cookie_header, WebCookieName(port)));
  if (!uid) return access;
  access.kind = WebAccess::Kind::kAllow;
  access.uid = *uid;
  return access;
}

std::vector<std::string> WebHostsFor(const std::string& address, int port) {
  std::vector<std::string> hosts;
  auto add = [&](const std::string& name) {
    std::string h = absl::StrCat(absl::AsciiStrToLower(name), ":", port);
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  };
  if (address == "0.0.0.0" || address == "::") return hosts;  // any name of the machine
  if (address == "127.0.0.1" || address == "localhost" || address == "::1") {
    add("127.0.0.1");
    add("localhost");
    add("[::1]");
  } else {
    add(address.find(':') != std::string::npos ? absl::StrCat("[", address, "]") : address);
  }
  return hosts;
}

}  // namespace amld::daemon
