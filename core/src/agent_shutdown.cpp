// Shutdown requests (docs/api.md §2.2, §4.6): one agent, or a batch chosen
// by filter, with the idle and active-work rules.
#include "weft/agent_registry.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/field_rules.h"
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

Result<Json> AgentRegistry::shutdown(const std::string& guid, const Json& body) {
  const Json& graceful = body.get("graceful");
  ShutdownRequest request;
  request.graceful = !(graceful.isBool() && !graceful.asBool());  // non-boolean counts as true
  auto done = requestShutdown(guid, request);
  if (!done) return done.status();
  Json out = Json::object();
  out.set("success", Json(true));
  out.set("message", Json("Shutdown request sent to agent " + guid));
  out.set("graceful", Json(request.graceful));
  return out;
}

Result<Json> AgentRegistry::shutdownBatch(const Json& body,
                                          const std::function<bool(const std::string&)>& busy,
                                          const std::function<int64_t(const AgentRecord&)>& idleMs) {
  const Json& filter = body.get("filter");
  const Json& guids = body.get("agentGuids");
  auto falsy = [](const Json& v) {
    return v.isNull() || (v.isBool() && !v.asBool()) || (v.isNumber() && v.asDouble() == 0) ||
           (v.isString() && v.asString().empty());
  };
  const bool guidsGiven = !falsy(guids) && !(guids.isArray() && guids.asArray().empty());
  if (falsy(filter) && !guidsGiven) return Status::invalidArgument("Either filter or agentGuids must be provided");
  if (!guids.isNull() && !guids.isArray()) return Status::invalidArgument("agentGuids must be an array");
  if (!falsy(filter) && !filter.isObject()) return Status::invalidArgument("filter must be an object");
  const Json& fStatus = filter.get("status");
  if (!fStatus.isNull() && !fStatus.isString()) return Status::invalidArgument("filter.status must be a string");
  const Json& fIdle = filter.get("idleTimeMs");
  if (!fIdle.isNull() && !fIdle.isNumber()) return Status::invalidArgument("filter.idleTimeMs must be a number");
  const Json& fType = filter.get("agentType");
  if (!fType.isNull() && !isAgentTypeValue(fType)) {
    return Status::invalidArgument("filter.agentType must be copilot-cli or claude-code");
  }
  const Json& fBoundary = filter.get("boundary");
  if (!fBoundary.isNull() && !fBoundary.isString()) return Status::invalidArgument("filter.boundary must be a string");
  const Json& fCap = filter.get("capability");
  if (!fCap.isNull() && !fCap.isString()) return Status::invalidArgument("filter.capability must be a string");
  const Json& reason = body.get("reason");
  if (!reason.isNull() &&
      !(reason.isString() &&
        (reason.asString() == "manual" || reason.asString() == "scaling-down" ||
         reason.asString() == "maintenance" || reason.asString() == "error"))) {
    return Status::invalidArgument("Invalid reason. Must be one of: manual, scaling-down, maintenance, error");
  }
  if (guidsGiven && guids.asArray().size() > 1000) return Status::invalidArgument("agentGuids exceeds 1000 items");
  const bool graceful = !(body.get("graceful").isBool() && !body.get("graceful").asBool());
  ShutdownRequest request;
  request.graceful = graceful;
  request.reason = reason.isString() ? reason.asString() : "manual";
  if (body.get("gracePeriodMs").isNumber()) {
    request.gracePeriodMs = static_cast<int64_t>(body.get("gracePeriodMs").asDouble());
  }
  if (auto s = ready(); !s) return s;

  BatchResult batch;
  std::vector<std::string> selected;
  if (guidsGiven) {
    for (const auto& g : guids.asArray()) selected.push_back(g.isString() ? g.asString() : g.dump());
  } else {
    const Json& projectId = body.get("projectId");
    std::vector<std::shared_ptr<const AgentRecord>> rows;
    view_->forEach([&](const std::string&, const std::shared_ptr<const AgentRecord>& a) {
      if (projectId.isString() && a->projectId != projectId.asString()) return;
      if (fStatus.isString() && a->status != fStatus.asString()) return;
      if (fType.isString() && a->agentType != fType.asString()) return;
      if (fBoundary.isString() &&
          std::find(a->boundaries.begin(), a->boundaries.end(), fBoundary.asString()) ==
              a->boundaries.end()) {
        return;
      }
      if (fCap.isString() && !a->hasCapability(fCap.asString())) return;
      if (fIdle.isNumber() && static_cast<double>(idleMs(*a)) < fIdle.asDouble()) return;
      rows.push_back(a);
    });
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a->guid < b->guid; });
    for (const auto& a : rows) selected.push_back(a->guid);
  }
  for (const auto& guid : selected) {
    if (!graceful && busy(guid)) {
      batch.fail(guid, "Agent currently processing work (use graceful: true)");
      continue;
    }
    auto done = requestShutdown(guid, request);
    if (done) {
      batch.succeed(guid);
    } else if (done.code() == Code::NotFound) {
      batch.fail(guid, "Agent not found");
    } else {
      return done.status();  // stop at the first backend failure (§1.9)
    }
  }
  Json out = batch.toJson(ctx_.now());
  out.set("shutdownAgents", batch.success());
  out.set("graceful", Json(graceful));
  return out;
}

}  // namespace weft
