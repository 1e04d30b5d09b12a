// Shutdown requests (docs/api.md §2.2, §4.6): one agent, or a batch chosen
// by filter, with the idle and active-work rules.
#include "weft/agent_registry.h"

#include <algorithm>

#include "weft/ids.h"
#include "weft/log.h"

namespace weft {

Result<std::shared_ptr<const AgentRecord>> AgentRegistry::requestShutdown(
    const std::string& guid, const ShutdownRequest& request) {
  const std::string nowIso = formatIso(ctx_.now());
  auto updated = modify(guid, [&](Json& entry) {
    Json req = Json::object();
    req.set("requestedAt", Json(nowIso));
    req.set("graceful", Json(request.graceful));
    req.set("reason", Json(request.reason));
    if (request.gracePeriodMs) req.set("gracePeriodMs", Json(*request.gracePeriodMs));
    entry.set("shutdownRequested", std::move(req));
    return true;
  });
  if (!updated) return updated;

  // With nats, also tell the agent directly. Best effort: the stored field is
  // the request of record, so a failed publication only gets logged.
  if (KvMessaging* messaging = ctx_.store->messaging()) {
    const std::string project = (*updated)->projectId;
    Json payload = Json::object();
    payload.set("graceful", Json(request.graceful));
    payload.set("reason", Json(request.reason));
    payload.set("requestedAt", Json(nowIso));
    if (request.gracePeriodMs) payload.set("gracePeriodMs", Json(*request.gracePeriodMs));
    std::string subject = "loom." + project + ".agents." + guid + ".shutdown";
    if (auto s = messaging->publish(subject, payload.dump()); !s) {
      log::warn("shutdown publish failed", {{"subject", subject}, {"error", s.toString()}});
    }
    Json metadata = Json::object();
    metadata.set("graceful", Json(request.graceful));
    metadata.set("reason", Json(request.reason));
    if (request.gracePeriodMs) metadata.set("gracePeriodMs", Json(*request.gracePeriodMs));
    Json inbox = Json::object();
    inbox.set("id", Json(newUuid()));
    inbox.set("senderGuid", Json(ctx_.instanceId));
    inbox.set("senderHandle", Json("weft"));
    inbox.set("recipientGuid", Json(guid));
    inbox.set("messageType", Json("shutdown-request"));
    inbox.set("content", Json("Shutdown requested (" + request.reason + ", graceful=" +
                              (request.graceful ? "true" : "false") + ")"));
    inbox.set("metadata", std::move(metadata));
    inbox.set("timestamp", Json(nowIso));
    auto s = messaging->publishJetStream("global.agent." + guid, inbox.dump());
    if (!s && s.code() != Code::NotFound) {
      log::warn("shutdown inbox publish failed", {{"guid", guid}, {"error", s.toString()}});
    }
  }
  return updated;
}

Result<AgentRegistry::ShutdownSent> AgentRegistry::shutdown(const std::string& guid,
                                                            const ShutdownRequest& request) {
  auto done = requestShutdown(guid, request);
  if (!done) return done.status();
  return ShutdownSent{guid, request.graceful, std::move(*done)};
}

Result<AgentRegistry::ShutdownBatchResult> AgentRegistry::shutdownBatch(
    const ShutdownBatchRequest& r, const std::function<bool(const std::string&)>& busy,
    const std::function<int64_t(const AgentRecord&)>& idleMs) {
  const ShutdownRequest& request = r.request;
  if (auto s = ready(); !s) return s;

  ShutdownBatchResult out;
  out.graceful = request.graceful;
  std::vector<std::string> selected;
  if (r.agentGuids) {
    selected = *r.agentGuids;
  } else {
    std::vector<std::shared_ptr<const AgentRecord>> rows;
    view_->forEach([&](const std::string&, const std::shared_ptr<const AgentRecord>& a) {
      if (r.projectId && a->projectId != *r.projectId) return;
      if (r.status && a->status != *r.status) return;
      if (r.agentType && a->agentType != *r.agentType) return;
      if (r.boundary &&
          std::find(a->boundaries.begin(), a->boundaries.end(), *r.boundary) ==
              a->boundaries.end()) {
        return;
      }
      if (r.capability && !a->hasCapability(*r.capability)) return;
      if (r.idleTimeMs && static_cast<double>(idleMs(*a)) < *r.idleTimeMs) return;
      rows.push_back(a);
    });
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a->guid < b->guid; });
    for (const auto& a : rows) selected.push_back(a->guid);
  }
  for (const auto& guid : selected) {
    if (!request.graceful && busy(guid)) {
      out.batch.fail(guid, "Agent currently processing work (use graceful: true)");
      continue;
    }
    auto done = requestShutdown(guid, request);
    if (done) {
      out.batch.succeed(guid);
    } else if (done.code() == Code::NotFound) {
      out.batch.fail(guid, "Agent not found");
    } else {
      return done.status();  // stop at the first backend failure (§1.9)
    }
  }
  out.completedAtMs = ctx_.now();
  return out;
}

}  // namespace weft
