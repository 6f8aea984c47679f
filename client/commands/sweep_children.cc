#include "client/commands/sweep_children.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>

#include "amld/v1/runs.grpc.pb.h"
#include "client/grpc_status.h"

namespace amld::client::commands {

absl::StatusOr<std::vector<SweepChild>> RankSweepChildren(const Connection& conn,
                                                          const amld::v1::Run& parent) {
  const amld::v1::SweepSpec& spec = parent.config().sweep();
  const bool maximize = spec.primary_metric_goal() == amld::v1::PrimaryMetricGoal::MAXIMIZE;
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  std::vector<SweepChild> children;
  amld::v1::ListRunsRequest list;
  list.set_parent_run_id(parent.id());
  list.set_page_size(1000);
  for (;;) {
    grpc::ClientContext ctx;
    amld::v1::ListRunsResponse page;
    grpc::Status st = stub->ListRuns(&ctx, list, &page);
    if (!st.ok()) return FromGrpcStatus(st, "list children", conn.socket_path);
    for (auto& r : *page.mutable_runs()) children.push_back({std::move(r), std::nullopt, 0});
    if (page.next_page_token().empty()) break;
    list.set_page_token(page.next_page_token());
  }
  for (SweepChild& c : children) {
    grpc::ClientContext ctx;
    amld::v1::GetMetricsRequest req;
    req.set_run_id(c.run.id());
    req.add_names(spec.primary_metric_name());
    amld::v1::GetMetricsResponse resp;
    grpc::Status st = stub->GetMetrics(&ctx, req, &resp);
    if (!st.ok()) return FromGrpcStatus(st, "read metrics", conn.socket_path);
    for (const amld::v1::Metric& m : resp.metrics()) {
      if (m.value_case() != amld::v1::Metric::kNumber) continue;
      ++c.logged;
      if (!c.best || (maximize ? m.number() > *c.best : m.number() < *c.best)) c.best = m.number();
    }
  }
  // Best first; children without the metric last, newest first among them.
  std::stable_sort(children.begin(), children.end(), [&](const SweepChild& a, const SweepChild& b) {
    if (a.best.has_value() != b.best.has_value()) return a.best.has_value();
    if (!a.best) return false;
    return maximize ? *a.best > *b.best : *a.best < *b.best;
  });
  return children;
}

}  // namespace amld::client::commands
