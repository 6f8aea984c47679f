// The web view's door (daemon/web/web_access.h) and the whole daemon serving
// it: nothing listens until asked, no token or a wrong one is 401, a foreign
// Host is 403, the link's token becomes a cookie, and with it the JSON
// endpoints answer from the daemon's services (a real run's log, metrics and
// file bytes).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "amld/v1/web.grpc.pb.h"
#include "daemon/web/web_access.h"
#include "storage/cas.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/in_process_daemon.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using ::testing::HasSubstr;
using testing::Eventually;
using testing::WriteFile;
using Kind = WebAccess::Kind;

// ---------------------------------------------------------------------------
// The rule alone.

TEST(WebTokensTest, OneTokenPerUserForTheDaemonsLife) {
  WebTokens tokens;
  const std::string a = tokens.TokenFor(1000);
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(tokens.TokenFor(1000), a);
  const std::string b = tokens.TokenFor(1001);
  EXPECT_NE(a, b);
  EXPECT_EQ(tokens.UidOf(a), 1000u);
  EXPECT_EQ(tokens.UidOf(b), 1001u);
  EXPECT_EQ(tokens.UidOf(""), std::nullopt);
  EXPECT_EQ(tokens.UidOf(a.substr(0, 63)), std::nullopt);
  EXPECT_EQ(tokens.UidOf(a + "0"), std::nullopt);
}

TEST(WebAccessTest, TokenInTheLinkBecomesACookie) {
  WebTokens tokens;
  const std::string t = tokens.TokenFor(1000);
  const auto hosts = WebHostsFor("127.0.0.1", 8265);
  WebAccess a = CheckWebAccess(tokens, {"127.0.0.1:8265", "", t, "/"}, 8265, hosts);
  EXPECT_EQ(a.kind, Kind::kSetCookie);
  EXPECT_EQ(a.uid, 1000u);
  EXPECT_EQ(a.location, "/");
  EXPECT_EQ(a.set_cookie, absl::StrCat("amld_8265=", t, "; Path=/; HttpOnly; SameSite=Strict"));

  a = CheckWebAccess(tokens, {"localhost:8265", "x=1; amld_8265=" + t, "", "/"}, 8265, hosts);
  EXPECT_EQ(a.kind, Kind::kAllow);
  EXPECT_EQ(a.uid, 1000u);
}

TEST(WebAccessTest, NoTokenWrongTokenOrAnotherPortsCookieIs401) {
  WebTokens tokens;
  const std::string t = tokens.TokenFor(1000);
  const auto hosts = WebHostsFor("127.0.0.1", 8265);
  EXPECT_EQ(CheckWebAccess(tokens, {"127.0.0.1:8265", "", "", "/"}, 8265, hosts).kind,
            Kind::kUnauthorized);
  EXPECT_EQ(CheckWebAccess(tokens, {"127.0.0.1:8265", "amld_8265=nope", "", "/"}, 8265, hosts).kind,
            Kind::kUnauthorized);
  EXPECT_EQ(CheckWebAccess(tokens, {"127.0.0.1:8265", "amld_9999=" + t, "", "/"}, 8265, hosts).kind,
            Kind::kUnauthorized);
  // A wrong token in the link is refused even with a good cookie.
  EXPECT_EQ(CheckWebAccess(tokens, {"127.0.0.1:8265", "amld_8265=" + t, "bad", "/"}, 8265, hosts).kind,
            Kind::kUnauthorized);
}

TEST(WebAccessTest, AForeignHostIs403EvenWithTheToken) {
  WebTokens tokens;
  const std::string t = tokens.TokenFor(1000);
  const auto hosts = WebHostsFor("127.0.0.1", 8265);
  EXPECT_EQ(CheckWebAccess(tokens, {"evil.example:8265", "amld_8265=" + t, "", "/"}, 8265, hosts).kind,
            Kind::kForbiddenHost);
  EXPECT_EQ(CheckWebAccess(tokens, {"127.0.0.1:8266", "amld_8265=" + t, "", "/"}, 8265, hosts).kind,
            Kind::kForbiddenHost);
  EXPECT_EQ(CheckWebAccess(tokens, {"", "amld_8265=" + t, "", "/"}, 8265, hosts).kind,
            Kind::kForbiddenHost);
  EXPECT_EQ(CheckWebAccess(tokens, {"[::1]:8265", "amld_8265=" + t, "", "/"}, 8265, hosts).kind,
            Kind::kAllow);
  // Bound to every interface (amld.yaml said so): any name of the machine.
  EXPECT_TRUE(WebHostsFor("0.0.0.0", 8265).empty());
  EXPECT_EQ(WebHostsFor("10.1.2.3", 80), std::vector<std::string>{"10.1.2.3:80"});
}

// ---------------------------------------------------------------------------
// The daemon serving it.

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class WebServerTest : public testing::InProcessDaemonTest {
 protected:
  void SetUp() override {
    port_ = FreePort();
    options_.web.port = port_;
    InProcessDaemonTest::SetUp();
    web_ = pb::WebView::NewStub(grpc::CreateChannel("unix:" + daemon_->socket_path().string(),
                                                    grpc::InsecureChannelCredentials()));
  }

  pb::OpenWebViewResponse Open() {
    grpc::ClientContext ctx;
    pb::OpenWebViewResponse view;
    grpc::Status s = web_->OpenWebView(&ctx, pb::OpenWebViewRequest(), &view);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return view;
  }

  httplib::Result Get(const std::string& path, const httplib::Headers& headers = {}) {
    httplib::Client http("127.0.0.1", port_);
    return http.Get(path.c_str(), headers);
  }

  std::string Cookie(const std::string& token) { return absl::StrCat("amld_", port_, "=", token); }

  std::string SubmitCommand(const std::string& command) {
    WriteFile(dir_ / "src/empty.txt", "");
    auto snapshot = amld::storage::BuildSnapshot(dir_ / "src");
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    auto cas = amld::storage::ContentStore::Open(options_.data_dir / "cas");
    EXPECT_TRUE(amld::storage::StoreSnapshot(*snapshot, **cas).ok());
    pb::SubmitRunRequest req;
    req.mutable_config()->set_experiment_name("web");
    amld::storage::ToProto(snapshot->root, req.mutable_config()->mutable_snapshot_root());
    req.mutable_config()->set_command(command);
    pb::SubmitRunResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = runs_->SubmitRun(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.run().id();
  }

  int port_ = 0;
  std::unique_ptr<pb::WebView::Stub> web_;
};

TEST_F(WebServerTest, NothingListensUntilAskedThenTheTokenIsTheDoor) {
  EXPECT_FALSE(Get("/")) << "off by default: nothing may listen before OpenWebView";

  const pb::OpenWebViewResponse view = Open();
  EXPECT_EQ(view.base_url(), absl::StrCat("http://127.0.0.1:", port_, "/"));
  EXPECT_EQ(view.url(), view.base_url() + "?token=" + view.token());
  EXPECT_EQ(Open().token(), view.token()) << "the same token for the daemon's life";

  for (const char* path : {"/", "/api/runs", "/static/app.js", "/api/runs/x/file?path=a"}) {
    auto res = Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    EXPECT_THAT(res->body, HasSubstr("aml ui")) << path;
    EXPECT_EQ(Get(path, {{"Cookie", Cookie("0123")}})->status, 401) << path;
    EXPECT_EQ(Get(absl::StrCat(path, absl::StrContains(path, "?") ? "&" : "?", "token=nope"))->status,
              401)
        << path;
  }

  auto link = Get("/?token=" + view.token());
  ASSERT_TRUE(link);
  EXPECT_EQ(link->status, 303);
  EXPECT_EQ(link->get_header_value("Location"), "/");
  EXPECT_THAT(link->get_header_value("Set-Cookie"),
              HasSubstr(Cookie(view.token()) + "; Path=/; HttpOnly; SameSite=Strict"));

  auto page = Get("/", {{"Cookie", Cookie(view.token())}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("/static/chart.min.js"));
  EXPECT_EQ(page->get_header_value("X-Frame-Options"), "DENY");
  auto chart = Get("/static/chart.min.js", {{"Cookie", Cookie(view.token())}});
  EXPECT_EQ(chart->status, 200);
  EXPECT_THAT(chart->body, HasSubstr("Chart.js v3"));

  auto foreign = Get("/", {{"Cookie", Cookie(view.token())}, {"Host", "attacker.example"}});
  ASSERT_TRUE(foreign);
  EXPECT_EQ(foreign->status, 403);
}

TEST_F(WebServerTest, EndpointsAnswerFromTheDaemonsServices) {
  const std::string cookie = Cookie(Open().token());
  const std::string id = SubmitCommand(
      "echo 'hello from the run'; mkdir -p outputs; printf 'a\\0b' > outputs/blob.bin; "
      "for i in 1 2 3; do echo \"{\\\"name\\\": \\\"loss\\\", \\\"value\\\": 0.$i, "
      "\\\"step\\\": $i, \\\"time\\\": 1700000000}\" >> \"$AMLD_METRICS_FILE\"; done");
  ASSERT_TRUE(Eventually([&] {
    auto res = Get("/api/runs/" + id, {{"Cookie", cookie}});
    return res && res->status == 200 && absl::StrContains(res->body, "\"COMPLETED\"");
  }));

  auto runs = Get("/api/runs?experiment=web", {{"Cookie", cookie}});
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->status, 200);
  nlohmann::json j = nlohmann::json::parse(runs->body);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["id"], id);
  EXPECT_EQ(j["runs"][0]["status"], "COMPLETED");
  EXPECT_EQ(j["runs"][0]["target"], "local");
  EXPECT_TRUE(j["runs"][0]["started"].is_number());

  auto metrics = Get("/api/runs/" + id + "/metrics", {{"Cookie", cookie}});
  j = nlohmann::json::parse(metrics->body);
  EXPECT_EQ(j["metrics"]["loss"]["steps"], nlohmann::json({1, 2, 3}));
  EXPECT_EQ(j["metrics"]["loss"]["values"], nlohmann::json({0.1, 0.2, 0.3}));
  j = nlohmann::json::parse(Get("/api/metrics/last?runs=" + id, {{"Cookie", cookie}})->body);
  EXPECT_EQ(j[id]["loss"], 0.3);

  auto log = Get("/api/runs/" + id + "/log?offset=6", {{"Cookie", cookie}});
  EXPECT_EQ(log->status, 200);
  EXPECT_EQ(log->body.substr(0, 13), "from the run\n");
  EXPECT_EQ(log->get_header_value("X-Log-Offset"), "6");
  EXPECT_EQ(log->get_header_value("X-Log-Next"), absl::StrCat(6 + log->body.size()));

  ASSERT_TRUE(Eventually([&] {
    auto files = Get("/api/runs/" + id + "/files", {{"Cookie", cookie}});
    return files && absl::StrContains(files->body, "outputs/blob.bin");
  }));
  auto blob = Get("/api/runs/" + id + "/file?path=outputs/blob.bin", {{"Cookie", cookie}});
  EXPECT_EQ(blob->status, 200);
  EXPECT_EQ(blob->body, std::string("a\0b", 3));
  EXPECT_THAT(blob->get_header_value("Content-Disposition"), HasSubstr("blob.bin"));

  EXPECT_EQ(Get("/api/runs/nosuchrun_1", {{"Cookie", cookie}})->status, 404);
  EXPECT_EQ(Get("/api/runs/" + id + "/file?path=../x", {{"Cookie", cookie}})->status, 400);
  EXPECT_EQ(Get("/api/runs?status=BOGUS", {{"Cookie", cookie}})->status, 400);
}

TEST_F(WebServerTest, EnabledInTheConfigItServesFromTheStart) {
  daemon_->Shutdown();
  options_.web.enabled = true;
  StartDaemon();
  auto res = Get("/");
  ASSERT_TRUE(res) << "web.enabled: the view listens before anyone asks";
  EXPECT_EQ(res->status, 401);
}

}  // namespace
}  // namespace amld::daemon
