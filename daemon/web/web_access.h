// Who may see the web view: the rule every HTTP request passes before
// anything is served (daemon/web/web_server.h calls CheckWebAccess first).
//
// Each user gets a token (32 random bytes, hex) from WebView.OpenWebView
// over the Unix socket, so who asked is the kernel's answer (SO_PEERCRED),
// as for every other call. A request is let in when it carries a known token
// either as `?token=` (the link `aml ui` prints; answered with a cookie and a
// redirect to the same address without the token) or as the cookie
// `amld_<port>` (cookies ignore ports, so two daemons' views on one machine
// keep theirs apart). Anything else is 401. The Host header must name the
// address the view is served on (127.0.0.1, localhost or [::1] and the
// port): a page on another site that rebinds its name to 127.0.0.1 gets 403
// even before the token is looked at.
//
// Thread-safety: WebTokens is thread-safe; CheckWebAccess is a pure
// function.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace amld::daemon {

class WebTokens {
 public:
  // The token of `uid`, made on its first call; the same for the daemon's
  // life.
  std::string TokenFor(uid_t uid);
  // The uid whose token `token` is; nullopt for any other string. Compares
  // every known token in constant time, so timing tells nothing.
  std::optional<uid_t> UidOf(std::string_view token) const;

 private:
  mutable absl::Mutex mu_;
  std::map<uid_t, std::string> tokens_ ABSL_GUARDED_BY(mu_);
};

// What CheckWebAccess needs of one request.
struct WebRequestFacts {
  std::string host;           // the Host header ("" when absent)
  std::string cookie_header;  // the Cookie header ("" when absent)
  std::string query_token;    // the `token` query parameter ("" when absent)
  // The path and the query without the token parameter, for the redirect.
  std::string target_without_token;
};

struct WebAccess {
  enum class Kind {
    kAllow,            // serve, as `uid`
    kSetCookie,        // answer 303 to `location` with `set_cookie`
    kUnauthorized,     // 401: no token or an unknown one
    kForbiddenHost,    // 403: the Host header is not this view's address
  };
  Kind kind = Kind::kUnauthorized;
  uid_t uid = 0;
  std::string set_cookie;  // a Set-Cookie header value, for kSetCookie
  std::string location;    // for kSetCookie
};

// The cookie that carries the token for the view on `port`.
std::string WebCookieName(int port);

// `hosts`: the Host header values this view answers to, e.g.
// {"127.0.0.1:8265", "localhost:8265", "[::1]:8265"} (WebHostsFor); empty:
// any (a view bound to all interfaces, which amld.yaml must ask for).
WebAccess CheckWebAccess(const WebTokens& tokens, const WebRequestFacts& request, int port,
                         const std::vector<std::string>& hosts);

// The Host values a view bound to `address`:`port` answers to: the address
// itself, and for a loopback address also localhost, 127.0.0.1 and [::1];
// none (any Host) for 0.0.0.0 and ::, whose names amld cannot know.
std::vector<std::string> WebHostsFor(const std::string& address, int port);

}  // namespace amld::daemon
