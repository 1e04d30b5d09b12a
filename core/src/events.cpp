#include "weft/events.h"

#include <algorithm>
#include <exception>

#include "weft/agent_registry.h"
#include "weft/log.h"
#include "weft/work_queue.h"
#include "weft/work_transitions.h"

namespace weft {

namespace {

size_t errorCount(const WorkItem& item) { return item.errors.size(); }

// The progress as the work view keeps it (WorkEntry::progress).
std::optional<int64_t> readableProgress(const WorkItem& item) {
  return item.has(WorkField::Progress) ? std::optional<int64_t>(item.progress) : std::nullopt;
}

// Copies item[field] into fields when present (and not null).
void copyField(Json::Object& fields, const Json& item, const char* field,
               const char* as = nullptr) {
  const Json* v = item.find(field);
  if (v && !v->isNull()) fields.emplace_back(as ? as : field, *v);
}

// Copies the item's member into fields when present (and not null).
void copyField(Json::Object& fields, const WorkItem& item, WorkField field) {
  Json v = item.value(field);
  if (!v.isNull()) fields.emplace_back(workFieldName(field), std::move(v));
}

void addString(Json::Object& fields, const char* name, const std::string& value) {
  if (!value.empty()) fields.emplace_back(name, Json(value));
}

// assignedTo and assignedToAgent, each omitted when unknown.
void addAssignee(Json::Object& fields, const std::string& guid,
                 const std::function<Json(const std::string&)>& summaryOf) {
  if (guid.empty()) return;
  fields.emplace_back("assignedTo", Json(guid));
  Json summary = summaryOf ? summaryOf(guid) : Json();
  if (summary.isObject()) fields.emplace_back("assignedToAgent", std::move(summary));
}

Json stringArray(const std::vector<std::string>& values) {
  Json out = Json::array();
  for (const auto& v : values) out.push(Json(v));
  return out;
}

}  // namespace

std::string eventTopic(std::string_view name) {
  auto starts = [&](std::string_view prefix) { return name.substr(0, prefix.size()) == prefix; };
  if (starts("work:")) return "work";
  if (starts("agent:")) return "agents";
  if (starts("target:") || starts("spin-up:")) return "targets";
  return "";
}

Event makeEvent(std::string name, const std::string& projectId, int64_t nowMs,
                Json::Object fields) {
  Event e;
  e.topic = eventTopic(name);
  Json::Object data;
  data.reserve(fields.size() + 3);
  data.emplace_back("type", Json(name));
  data.emplace_back("timestamp", Json(formatIso(nowMs)));
  data.emplace_back("projectId", Json(projectId));
  for (auto& f : fields) data.push_back(std::move(f));
  e.data = Json(std::move(data));
  e.name = std::move(name);
  return e;
}

Json agentSummary(const AgentRecord& agent) {
  Json s = Json::object();
  s.set("guid", Json(agent.guid));
  if (const Json* h = agent.entry.find("handle"); h && h->isString()) s.set("handle", *h);
  s.set("agentType", Json(agent.agentType));
  if (const Json* h = agent.entry.find("hostname"); h && h->isString()) s.set("hostname", *h);
  return s;
}

namespace {

// The events of a record that carries a transition log: one per entry the
// reader has not seen, then the latest progress of an active attempt.
std::vector<Event> eventsFromLog(const WorkEntry* before, const WorkRecord& after, int64_t nowMs,
                                 const std::function<Json(const std::string&)>& summaryOf) {
  std::vector<Event> out;
  const WorkItem& item = after;
  auto base = [&]() {
    Json::Object f;
    f.emplace_back("workId", Json(after.id));
    f.emplace_back("taskId", Json(after.taskId));
    return f;
  };
  auto emit = [&](const char* name, Json::Object fields) {
    out.push_back(makeEvent(name, after.projectId, nowMs, std::move(fields)));
  };
  const std::optional<int64_t> seen =
      before ? std::optional<int64_t>(before->lastTransitionSeq) : std::nullopt;
  for (const Json* entry : unseenTransitions(seen, after.transitions)) {
    const std::string event = entry->getString("event");
    const std::string agent = entry->getString("agentGuid");
    Json::Object f = base();
    if (event == "submitted") {
      f.emplace_back("capability", Json(after.capability));
      f.emplace_back("boundary", Json(after.boundary));
      f.emplace_back("priority", Json(after.priority));
      copyField(f, item, WorkField::Description);
      if (entry->getBool("requeued", false)) f.emplace_back("requeued", Json(true));
      copyField(f, *entry, "nextAttemptAt");  // delayed work: not claimable before
      emit("work:submitted", std::move(f));
    } else if (event == "assigned") {
      addAssignee(f, agent, summaryOf);
      f.emplace_back("capability", Json(after.capability));
      f.emplace_back("boundary", Json(after.boundary));
      f.emplace_back("attempts", Json(entry->getInt("attempt", 0)));
      copyField(f, *entry, "leaseExpiresAt");
      emit("work:assigned", std::move(f));
    } else if (event == "started") {
      addAssignee(f, agent, summaryOf);
      emit("work:started", std::move(f));
    } else if (event == "completed") {
      addAssignee(f, agent, summaryOf);
      const Json& summary = item.result.get("summary");
      if (summary.isString()) f.emplace_back("summary", summary);
      emit("work:completed", std::move(f));
    } else if (event == "failed") {
      const int64_t index = entry->getInt("error", -1);
      const ErrorRecord& error = index >= 0 && static_cast<size_t>(index) < item.errors.size()
                                     ? item.errors[static_cast<size_t>(index)]
                                     : item.error;
      addAssignee(f, agent, summaryOf);
      f.emplace_back("errorMessage", Json(error.message));
      f.emplace_back("recoverable", Json(error.recoverable));
      f.emplace_back("retrying", Json(entry->getBool("retrying", false)));
      f.emplace_back("deadLettered", Json(entry->getBool("deadLettered", false)));
      f.emplace_back("attempts", Json(entry->getInt("attempt", 0)));
      f.emplace_back("maxAttempts", Json(item.maxAttempts));
      copyField(f, *entry, "nextAttemptAt");  // a retry with backoff: the next attempt's time
      emit("work:failed", std::move(f));
    } else if (event == "cancelled") {
      addAssignee(f, agent, summaryOf);
      emit("work:cancelled", std::move(f));
    }
  }
  // Progress is not a transition: report the latest value of the current
  // attempt when it is new to the reader.
  const Json progress = item.value(WorkField::Progress);
  if (after.isActive() && !progress.isNull()) {
    const bool sameAttempt = before && before->attempts == item.attempts;
    if (!sameAttempt || before->progress != readableProgress(item)) {
      Json::Object f = base();
      addAssignee(f, after.assignedTo, summaryOf);
      f.emplace_back("progress", progress);
      emit("work:progress", std::move(f));
    }
  }
  return out;
}

}  // namespace

std::vector<Event> deriveWorkEvents(const WorkEntry* before, const WorkRecord* after,
                                    int64_t nowMs,
                                    const std::function<Json(const std::string&)>& summaryOf) {
  std::vector<Event> out;
  // A deletion is retention (or a purge): not a state change of the item.
  if (!after) return out;
  if (hasTransitions(after->transitions)) return eventsFromLog(before, *after, nowMs, summaryOf);

  // No transition log (written by something other than Weft, or before the
  // log existed): derive from the difference of the two values.
  const WorkItem& item = *after;
  const std::string status = after->statusText();
  auto emit = [&](const char* name, Json::Object fields) {
    out.push_back(makeEvent(name, after->projectId, nowMs, std::move(fields)));
  };
  auto submitted = [&](bool requeued) {
    Json::Object f;
    f.emplace_back("workId", Json(after->id));
    f.emplace_back("taskId", Json(after->taskId));
    f.emplace_back("capability", Json(after->capability));
    f.emplace_back("boundary", Json(after->boundary));
    f.emplace_back("priority", Json(after->priority));
    copyField(f, item, WorkField::Description);
    if (requeued) f.emplace_back("requeued", Json(true));
    emit("work:submitted", std::move(f));
  };
  auto started = [&]() {
    Json::Object f;
    f.emplace_back("workId", Json(after->id));
    f.emplace_back("taskId", Json(after->taskId));
    addAssignee(f, after->assignedTo, summaryOf);
    return f;
  };

  if (!before) {
    // A new key. Pending is a submission, or a DLQ retry that recreated an
    // item already removed by retention (it keeps its failure history).
    // Items that appear in any other state were written by something that is
    // not Weft's lifecycle; there is no transition to report.
    if (status == "pending") {
      submitted(errorCount(item) > 0 || item.attempts > 0);
    }
    return out;
  }

  const std::string previous = before->statusText();
  if (status == previous) {
    // Lease renewals, idempotent starts and the like are not events; a
    // changed progress of an active item is.
    if (after->isActive() && readableProgress(item) != before->progress &&
        item.contains(WorkField::Progress)) {
      Json::Object f = started();
      copyField(f, item, WorkField::Progress);
      emit("work:progress", std::move(f));
    }
    return out;
  }

  const bool newError = errorCount(item) > before->errorCount;
  if (newError && (status == "pending" || status == "failed")) {
    // A failure: the agent's report or a lease expiry, retried or
    // dead-lettered. The assignment was cleared by a retry, so take the
    // assignee from before.
    const ErrorRecord& last = item.errors.back();
    Json::Object f;
    f.emplace_back("workId", Json(after->id));
    f.emplace_back("taskId", Json(after->taskId));
    addAssignee(f, before->assignedTo, summaryOf);
    f.emplace_back("errorMessage", Json(last.message));
    f.emplace_back("recoverable", Json(last.recoverable));
    f.emplace_back("retrying", Json(status == "pending"));
    f.emplace_back("deadLettered", Json(status == "failed"));
    f.emplace_back("attempts", Json(item.attempts));
    f.emplace_back("maxAttempts", Json(item.maxAttempts));
    emit("work:failed", std::move(f));
    return out;
  }

  if (status == "pending") {
    // Back to pending without a failure: DLQ retry or batch reassign.
    submitted(true);
  } else if (status == "assigned") {
    Json::Object f;
    f.emplace_back("workId", Json(after->id));
    f.emplace_back("taskId", Json(after->taskId));
    addAssignee(f, after->assignedTo, summaryOf);
    f.emplace_back("capability", Json(after->capability));
    f.emplace_back("boundary", Json(after->boundary));
    f.emplace_back("attempts", Json(item.attempts));
    copyField(f, item, WorkField::LeaseExpiresAt);
    emit("work:assigned", std::move(f));
  } else if (status == "in-progress") {
    emit("work:started", started());
  } else if (status == "completed") {
    Json::Object f;
    f.emplace_back("workId", Json(after->id));
    f.emplace_back("taskId", Json(after->taskId));
    addAssignee(f, after->assignedTo.empty() ? before->assignedTo : after->assignedTo, summaryOf);
    const Json& summary = item.result.get("summary");
    if (summary.isString()) f.emplace_back("summary", summary);
    emit("work:completed", std::move(f));
  } else if (status == "cancelled") {
    Json::Object f;
    f.emplace_back("workId", Json(after->id));
    f.emplace_back("taskId", Json(after->taskId));
    addAssignee(f, before->assignedTo, summaryOf);
    emit("work:cancelled", std::move(f));
  }
  return out;
}

std::vector<Event> deriveAgentEvents(const AgentRecord* before, const AgentRecord* after,
                                     int64_t nowMs, int64_t staleAfterMs) {
  std::vector<Event> out;
  const AgentRecord* current = after ? after : before;
  if (!current) return out;
  auto emit = [&](const char* name, Json::Object fields) {
    out.push_back(makeEvent(name, current->projectId, nowMs, std::move(fields)));
  };
  auto shutdown = [&](const std::string& reason, bool graceful, bool requested) {
    Json::Object f;
    f.emplace_back("agent", agentSummary(*current));
    f.emplace_back("reason", Json(reason));
    f.emplace_back("graceful", Json(graceful));
    f.emplace_back("requested", Json(requested));
    emit("agent:shutdown", std::move(f));
  };
  auto registered = [&]() {
    Json::Object f;
    f.emplace_back("agent", agentSummary(*after));
    f.emplace_back("capabilities", stringArray(after->capabilities));
    f.emplace_back("boundaries", stringArray(after->boundaries));
    addString(f, "status", after->status);
    emit("agent:registered", std::move(f));
  };

  if (!after) {
    // Deregistered by deletion, or expired. Already offline means its
    // shutdown was reported when it went offline.
    if (before->status != "offline") shutdown("manual", true, false);
    return out;
  }
  if (!before) {
    registered();
    return out;
  }

  const bool wasOffline = before->status == "offline";
  const bool isOffline = after->status == "offline";
  if (wasOffline && !isOffline) {
    registered();
  } else if (!wasOffline && isOffline) {
    // Staleness marking writes offline into an entry whose heartbeat is old;
    // a deregistration comes from a live agent (or on its behalf).
    const bool stale = after->isStale(nowMs, staleAfterMs);
    shutdown(stale ? "error" : "manual", !stale, false);
  } else if (!isOffline && (after->status != before->status ||
                            after->currentTaskCount != before->currentTaskCount ||
                            after->capabilities != before->capabilities)) {
    Json::Object f;
    f.emplace_back("agent", agentSummary(*after));
    addString(f, "previousStatus", before->status);
    addString(f, "newStatus", after->status);
    f.emplace_back("currentTaskCount", Json(after->currentTaskCount));
    f.emplace_back("capabilities", stringArray(after->capabilities));
    f.emplace_back("boundaries", stringArray(after->boundaries));
    emit("agent:updated", std::move(f));
  }

  // A shutdown request is recorded on the entry (§4.6), so every instance
  // sees it here. An agent re-putting its entry erases it: not an event.
  const Json& request = after->entry.get("shutdownRequested");
  if (request.isObject() && request != before->entry.get("shutdownRequested")) {
    const Json& reason = request.get("reason");
    shutdown(reason.isString() ? reason.asString() : "manual", request.getBool("graceful", true),
             true);
  }
  return out;
}

void EventHub::attach(AgentRegistry& agents, WorkQueue& work) {
  const ServiceContext& ctx = agents.context();
  const Clock* clock = ctx.clock;
  const int64_t staleAfterMs = ctx.options.staleAfterMs;
  agents.view().addListener(
      [this, clock, staleAfterMs](const std::string&, const AgentRegistry::View::Ptr& before,
                                  const AgentRegistry::View::Ptr& after, bool live) {
        if (!live) return;
        for (const Event& e :
             deriveAgentEvents(before.get(), after.get(), clock->nowMs(), staleAfterMs)) {
          deliver(e);
        }
      });
  const AgentRegistry* registry = &agents;
  work.view().addFullListener([this, clock, registry](const std::string&,
                                                      const WorkQueue::View::Ptr& before,
                                                      const WorkQueue::View::FullPtr& after,
                                                      bool live) {
    if (!live) return;
    auto summaryOf = [registry](const std::string& guid) { return registry->summary(guid); };
    for (const Event& e : deriveWorkEvents(before.get(), after.get(), clock->nowMs(), summaryOf)) {
      deliver(e);
    }
  });
}

EventHub::SubscriptionId EventHub::subscribe(Subscriber subscriber) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  const SubscriptionId id = nextId_++;
  subscribers_.push_back(Entry{id, std::move(subscriber)});
  return id;
}

void EventHub::unsubscribe(SubscriptionId id) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                    [id](const Entry& e) { return e.id == id; }),
                     subscribers_.end());
}

void EventHub::emit(Event event) {
  if (event.topic.empty()) event.topic = eventTopic(event.name);
  deliver(event);
}

uint64_t EventHub::emitted() const {
  return emitted_.load();
}

void EventHub::deliver(const Event& event) {
  emitted_.fetch_add(1);
  std::shared_lock<std::shared_mutex> lock(mutex_);
  for (const Entry& s : subscribers_) {
    try {
      s.fn(event);
    } catch (const std::exception& e) {
      log::warn("event subscriber failed", {{"event", event.name}, {"error", e.what()}});
    } catch (...) {
      log::warn("event subscriber failed", {{"event", event.name}});
    }
  }
}

}  // namespace weft
