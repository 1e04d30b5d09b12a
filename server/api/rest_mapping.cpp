#include "api/rest_mapping.h"

#include "api/rest_common.h"
#include "weft/ids.h"

namespace weft::rest {

Json toJson(const DeadLetter& entry) {
  Json out = Json::object();
  out.set("id", Json(entry.id));
  out.set("workItem", entry.workItemJson());
  out.set("reason", Json(deadLetterReasonText(entry.reason)));
  out.set("attempts", Json(entry.attempts));
  out.set("failedAt", Json(entry.failedAt));
  out.set("errors", entry.errorsJson());
  return out;
}

Json toJson(const DeadLetterPage& page) {
  return pageJson("items", page.items, page.pager, page.total,
                  [](const DeadLetter& entry) { return toJson(entry); });
}

Result<bool> parseRetryRequest(const Json& body) {
  const Json& reset = body.get("resetAttempts");
  if (reset.isNull()) return true;
  if (!reset.isBool()) return Status::invalidArgument("resetAttempts must be a boolean");
  return reset.asBool();
}

namespace {

Json totalsJson(const ProjectTotals& t) {
  Json o = Json::object();
  o.set("agents", Json(t.agents));
  o.set("pendingWork", Json(t.pendingWork));
  o.set("activeWork", Json(t.activeWork));
  o.set("completedWork", Json(t.completedWork));
  o.set("failedWork", Json(t.failedWork));
  o.set("cancelledWork", Json(t.cancelledWork));
  o.set("deadLettered", Json(t.deadLettered));
  o.set("targets", Json(t.targets));
  o.set("disabledTargets", Json(t.disabledTargets));
  return o;
}

}  // namespace

Json toJson(const StatsOverview& overview) {
  Json byProject = Json::object();
  for (const auto& [project, t] : overview.byProject) {
    Json p = totalsJson(t);
    p.set("lastActivity", Json(formatIso(t.lastActivityMs)));
    byProject.set(project, std::move(p));
  }
  Json body = Json::object();
  body.set("timestamp", Json(formatIso(overview.timestampMs)));
  body.set("totalProjects", Json(static_cast<int64_t>(overview.byProject.size())));
  body.set("totals", totalsJson(overview.totals));
  body.set("byProject", std::move(byProject));
  return body;
}

Json toJson(const ProjectList& list) {
  Json projects = Json::array();
  for (const std::string& p : list.projects) projects.push(Json(p));
  Json body = Json::object();
  body.set("timestamp", Json(formatIso(list.timestampMs)));
  body.set("projects", std::move(projects));
  body.set("count", Json(static_cast<int64_t>(list.projects.size())));
  return body;
}

Json toJson(const ChannelList& list) {
  Json channels = Json::array();
  for (const ChannelInfo& c : list.channels) {
    Json o = Json::object();
    o.set("name", Json(c.name));
    o.set("description", Json(c.description));
    channels.push(std::move(o));
  }
  Json body = Json::object();
  body.set("channels", std::move(channels));
  body.set("count", Json(static_cast<int64_t>(list.channels.size())));
  body.set("projectId", Json(list.projectId));
  return body;
}

Json toJson(const ChannelMessages& messages) {
  Json items = Json::array();
  for (const ChannelMessage& m : messages.messages) {
    Json o = Json::object();
    o.set("timestamp", m.timestamp);
    o.set("handle", m.handle);
    o.set("message", m.message);
    items.push(std::move(o));
  }
  Json body = Json::object();
  body.set("channel", Json(messages.channel));
  body.set("messages", std::move(items));
  body.set("count", Json(static_cast<int64_t>(messages.messages.size())));
  body.set("projectId", Json(messages.projectId));
  return body;
}

}  // namespace weft::rest
