#include "ws/ws_filter.h"

#include "weft/target_record.h"

namespace weft::ws {

namespace {

bool equalsField(const Json& data, const std::string& field, const Json& wanted) {
  const Json* v = data.find(field);
  return v && !v->isNull() && *v == wanted;
}

// Membership of `wanted` in the array data[field].
bool containsIn(const Json& data, const char* field, const Json& wanted) {
  const Json* list = data.find(field);
  if (!list || !list->isArray()) return false;
  for (const Json& e : list->asArray()) {
    if (e == wanted) return true;
  }
  return false;
}

bool matchesWork(const std::string& key, const Json& wanted, const Event& e) {
  if (key == "status") return Json(workStatusOf(e.name)) == wanted;
  if (key == "capability" || key == "boundary" || key == "taskId" || key == "assignedTo") {
    return equalsField(e.data, key, wanted);
  }
  return true;
}

bool matchesAgents(const std::string& key, const Json& wanted, const Event& e) {
  if (key == "agentType" || key == "guid") return equalsField(e.data.get("agent"), key, wanted);
  if (key == "status") {
    if (e.name == "agent:registered") return equalsField(e.data, "status", wanted);
    if (e.name == "agent:updated") return equalsField(e.data, "newStatus", wanted);
    if (e.name == "agent:shutdown") return wanted == Json("offline");
    return false;
  }
  if (key == "capability") return containsIn(e.data, "capabilities", wanted);
  if (key == "boundary") return containsIn(e.data, "boundaries", wanted);
  return true;
}

bool matchesTargets(const std::string& key, const Json& wanted, const Event& e) {
  if (key == "agentType" || key == "mechanism" || key == "targetId") {
    return equalsField(e.data, key, wanted);
  }
  if (key == "status") {
    if (e.name == "target:updated") return equalsField(e.data, "newStatus", wanted);
    if (e.name == "target:registered") {
      return wanted == Json(targetStatusText(TargetStatus::Available));
    }
    if (e.name == "target:disabled") {
      return wanted == Json(targetStatusText(TargetStatus::Disabled));
    }
    return false;
  }
  if (key == "capability") return containsIn(e.data, "capabilities", wanted);
  if (key == "boundary") return containsIn(e.data, "boundaries", wanted);
  return true;
}

}  // namespace

std::string workStatusOf(const std::string& name) {
  if (name == "work:submitted") return "pending";
  if (name == "work:assigned") return "assigned";
  if (name == "work:started" || name == "work:progress") return "in-progress";
  if (name == "work:completed") return "completed";
  if (name == "work:failed") return "failed";
  if (name == "work:cancelled") return "cancelled";
  return "";
}

bool matchesFilter(const std::string& topic, const Json& filter, const Event& event) {
  if (!filter.isObject()) return true;
  for (const auto& [key, wanted] : filter.asObject()) {
    if (wanted.isNull()) continue;
    bool ok = true;
    if (key == "projectId") {
      ok = equalsField(event.data, "projectId", wanted);
    } else if (topic == "work") {
      ok = matchesWork(key, wanted, event);
    } else if (topic == "agents") {
      ok = matchesAgents(key, wanted, event);
    } else if (topic == "targets") {
      ok = matchesTargets(key, wanted, event);
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace weft::ws
