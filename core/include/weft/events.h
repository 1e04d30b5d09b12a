// Live events (docs/api.md §5.3, §5.4): what the WebSocket stream carries.
//
// Events are DERIVED FROM THE STORAGE CHANGE FEED, never from the request
// that caused a change. EventHub::attach() adds listeners to the watch-fed
// views of the agent registry and the work queue; every live change
// (before -> after, decoded) is turned into zero or more events. Hence every
// weftd instance emits every event, whichever instance (or agent writing the
// registry directly) made the change, and only after the backend
// acknowledged the write (a view applies a write only once it was
// acknowledged, whether the writer applies it locally or the watch delivers
// it). A view applies each revision of a key exactly once whichever path
// delivers it first, so one change gives one event per instance.
//
// Not derived (no stored change behind them): `spin-up:*` events. Whoever
// runs a spin-up calls emit() for them, so they are delivered ONLY BY THE
// INSTANCE THAT CAUSED THEM. `target:*` events are derived from the targets
// view's live changes by the Targets service itself, which hands them to
// emit() (see Targets::setEventSink); do not attach the targets view here too,
// or every target event would be sent twice.
//
// Ordering: events of one key follow the order in which the view applied the
// changes: the view applies and notifies one change at a time, so even when a
// local write and the watch race on the same key the events keep the order of
// the revisions. Events of different buckets have no defined order.
//
// Coalescing: a change feed may skip intermediate values of a key when its
// reader falls behind (kv.h, watch), so the view can go from `pending`
// straight to `completed`. Work events therefore do not come from comparing
// the two values but from the item's transition log (work_transitions.h):
// every lifecycle write appends its step to the record in the same
// compare-and-set, and each step the reader has not seen becomes one event,
// in the order of the log. Every transition event (submitted, assigned,
// started, completed, failed, cancelled) reaches every instance exactly once
// and in lifecycle order however the feed coalesced. Only `work:progress` can
// be coalesced: a reader is told the latest progress of the current attempt,
// not every value reported. Agent events are still derived from the
// difference of two values, so intermediate agent states can be coalesced.
//
// Initial replays (`live == false`) emit nothing: they are old news. Replays
// after a Reset are live and emit what the reader missed, each step once.
// Deleted work items (retention) emit nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "weft/clock.h"
#include "weft/json.h"

namespace weft {

struct AgentRecord;
struct WorkRecord;
struct WorkEntry;
class AgentRegistry;
class WorkQueue;

struct Event {
  std::string name;   // e.g. "work:assigned"
  std::string topic;  // "work", "agents" or "targets" (eventTopic(name))
  // Always an object that starts with `type` (= name), `timestamp` (ISO) and
  // `projectId`, followed by the fields of the §5.4 catalogue for the event.
  Json data;

  const std::string& projectId() const { return data.get("projectId").asString(); }
};

// The topic of an event name (§5.3): work:* -> work, agent:* -> agents,
// target:* and spin-up:* -> targets; "" for anything else.
std::string eventTopic(std::string_view name);

// Builds an event with data = {type, timestamp, projectId, ...fields}.
Event makeEvent(std::string name, const std::string& projectId, int64_t nowMs, Json::Object fields);

// AgentSummary (§3.2) of a record: {guid, handle?, agentType, hostname?}.
Json agentSummary(const AgentRecord& agent);

// The pure derivations, exposed for unit tests. `before`/`after` are nullptr
// for "absent".
//
// Work (§5.4): absent -> pending `work:submitted` (`requeued:true` when the
// item already has a history, i.e. a DLQ retry recreating a purged item);
// back to pending without a new error (DLQ retry, batch reassign)
// `work:submitted` with `requeued:true`; -> assigned `work:assigned`;
// -> in-progress `work:started`; `progress` changed while active
// `work:progress`; -> completed `work:completed`; a new entry in `errors`
// with the item now pending (retry) or failed (dead-lettered)
// `work:failed`; -> cancelled `work:cancelled`. `summaryOf(guid)` returns
// the AgentSummary of an agent, or null when it is not in the registry.
// `before` is what the work view kept of the item, `after` the new value
// decoded whole.
std::vector<Event> deriveWorkEvents(const WorkEntry* before, const WorkRecord* after,
                                    int64_t nowMs,
                                    const std::function<Json(const std::string&)>& summaryOf);

// Agents (§5.4): `agent:registered` when a key appears or an entry goes from
// offline to another status; `agent:updated` when status (not to offline),
// currentTaskCount or capabilities change; `agent:shutdown` with
// `requested:true` when `shutdownRequested` appears or changes, and with
// `requested:false` when an entry becomes offline (reason `error` when it is
// stale at that moment, which is how staleness marking looks; `manual`
// otherwise) or is deleted while not offline. A heartbeat-only change emits
// nothing, and so does the deletion of an entry that was already offline
// (its shutdown was reported when it went offline).
std::vector<Event> deriveAgentEvents(const AgentRecord* before, const AgentRecord* after,
                                     int64_t nowMs, int64_t staleAfterMs);

// Fan-out point of the events of one weftd instance.
//
// Thread-safety: every method may be called from any thread. Subscribers are
// called synchronously on the thread that applied the change (a view's
// watch thread, or a request thread that applied its own write), one event
// at a time per emitting thread but possibly concurrently from several
// threads. A subscriber must therefore be thread-safe, quick and
// non-blocking (queue the event and return), must not throw (exceptions are
// caught and logged), and must not call subscribe/unsubscribe from inside
// the callback.
class EventHub {
 public:
  using Subscriber = std::function<void(const Event&)>;
  using SubscriptionId = uint64_t;

  EventHub() = default;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Adds listeners to both views that derive events from their live changes.
  // Call once, before the services start (views accept listeners only before
  // start()). The registry and the queue must outlive the views' threads,
  // and this hub must outlive both (stop the services before destroying it).
  void attach(AgentRegistry& agents, WorkQueue& work);

  SubscriptionId subscribe(Subscriber subscriber);
  // After it returns, the subscriber is not running and will not be called
  // again.
  void unsubscribe(SubscriptionId id);

  // Delivers an event with no stored change behind it (spin-up:*) to every
  // subscriber. Only this instance's subscribers see it (see the file
  // comment). An empty topic is filled in from the name.
  void emit(Event event);

  // Events delivered so far (for logs and tests).
  uint64_t emitted() const;

 private:
  struct Entry {
    SubscriptionId id;
    Subscriber fn;
  };
  void deliver(const Event& event);

  // Held shared while delivering, exclusively to change the list: so
  // unsubscribe() waits for deliveries in flight.
  mutable std::shared_mutex mutex_;
  std::vector<Entry> subscribers_;
  SubscriptionId nextId_ = 1;
  std::atomic<uint64_t> emitted_{0};
};

}  // namespace weft
