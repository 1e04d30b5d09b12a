// The REST mapping of the typed domain values: how a service's result is
// rendered as a response body, and how a request body becomes a service's
// typed arguments (docs/api.md). Services never see JSON bodies for the
// values mapped here; the rest of the domain follows one service at a time.
#pragma once

#include "api/rest_agents.h"
#include "api/rest_targets.h"
#include "api/rest_work.h"
#include "weft/channels.h"
#include "weft/dead_letters.h"
#include "weft/json.h"
#include "weft/stats.h"
#include "weft/status.h"

namespace weft::rest {

// A DeadLetterEntry (§3.5): id, workItem, reason, attempts, failedAt, errors.
Json toJson(const DeadLetter& entry);
// A DeadLetterList: items plus the pagination metadata (§1.8).
Json toJson(const DeadLetterPage& page);
// The body of POST /api/dlq/{id}/retry: `resetAttempts`, a boolean, default
// true. InvalidArgument naming the field otherwise.
Result<bool> parseRetryRequest(const Json& body);

// GET /api/stats: timestamp, totalProjects, totals, byProject (each with
// lastActivity).
Json toJson(const StatsOverview& overview);
// GET /api/stats/projects: timestamp, projects, count.
Json toJson(const ProjectList& list);

// GET /api/channels: channels [{name, description}], count, projectId.
Json toJson(const ChannelList& list);
// GET /api/channels/{name}/messages: channel, messages [{timestamp, handle,
// message}], count, projectId.
Json toJson(const ChannelMessages& messages);

// A typed service result in its REST form: the body, or the Status as it was.
template <typename T>
Result<Json> rendered(const Result<T>& result) {
  if (!result) return result.status();
  return toJson(*result);
}

// A request body parsed (parse: const Json& -> Result<Request>), the service
// called with the request, its result rendered; or the first failing step's
// Status.
template <typename Parse, typename Call>
Result<Json> parsedThenRendered(const Json& body, Parse parse, Call call) {
  auto request = parse(body);
  if (!request) return request.status();
  return rendered(call(*request));
}

}  // namespace weft::rest
