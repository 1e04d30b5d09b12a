#include "api/rest_mapping.h"

namespace weft::rest {

Json toJson(const DeadLetter& entry) {
  Json out = Json::object();
  out.set("id", Json(entry.id));
  out.set("workItem", entry.workItem);
  out.set("reason", Json(deadLetterReasonText(entry.reason)));
  out.set("attempts", Json(entry.attempts));
  out.set("failedAt", Json(entry.failedAt));
  out.set("errors", entry.errors);
  return out;
}

Json toJson(const DeadLetterPage& page) {
  Json items = Json::array();
  for (const auto& entry : page.items) items.push(toJson(*entry));
  Json body = Json::object();
  body.set("items", std::move(items));
  page.pager.writeMetadata(body, page.total);
  return body;
}

Result<bool> parseRetryRequest(const Json& body) {
  const Json& reset = body.get("resetAttempts");
  if (reset.isNull()) return true;
  if (!reset.isBool()) return Status::invalidArgument("resetAttempts must be a boolean");
  return reset.asBool();
}

}  // namespace weft::rest
