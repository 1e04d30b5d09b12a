// Server-side subscription filters of the WebSocket stream (docs/api.md §5.5).
#pragma once

#include <string>

#include "weft/events.h"
#include "weft/json.h"

namespace weft::ws {

// Whether `event` passes `filter` (a JSON object; {} matches everything) of
// a subscription to `topic`. Every topic accepts `projectId` (equality on the
// event's projectId); the other keys are those of §5.5 for the topic. An event
// lacking a filtered field fails the filter. Keys the topic does not define,
// and keys whose value is null, are ignored (leniency of §1.1).
bool matchesFilter(const std::string& topic, const Json& filter, const Event& event);

// The work status an event name stands for (§5.5): submitted -> pending,
// assigned -> assigned, started/progress -> in-progress, completed, failed and
// cancelled -> the same name; "" for other names.
std::string workStatusOf(const std::string& eventName);

}  // namespace weft::ws
