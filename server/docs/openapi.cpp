#include "docs/openapi.h"

#include <cctype>
#include <map>
#include <set>
#include <stdexcept>

#include "docs/embedded.h"

#ifndef WEFT_VERSION
#define WEFT_VERSION "0.0.0"
#endif

namespace weft::docs {
namespace {

const char* const kOperational = "Operational";
const char* const kAgents = "Agents";
const char* const kWork = "Work";
const char* const kExecution = "Work execution";
const char* const kDlq = "Dead-letter queue";
const char* const kTargets = "Targets";
const char* const kStats = "Stats";
const char* const kChannels = "Channels";
const char* const kEvents = "Events";

struct TagDoc {
  const char* name;
  const char* description;
};
const TagDoc kTags[] = {
    {kOperational, "Liveness, readiness, metrics and this documentation (§2.1)."},
    {kAgents,
     "The shared agent registry (§2.2). Agents may also write it directly through NATS KV."},
    {kWork, "Submitting, listing, reading and cancelling work items (§2.3)."},
    {kExecution,
     "The agent-facing lifecycle: claim, start, progress, complete, fail (§2.4). Every report "
     "carries the claim token of the current assignment."},
    {kDlq, "Work items that failed for good (§2.5)."},
    {kTargets,
     "Spin-up targets: how to start an agent (§2.6). Every `{id}` accepts the target id or its "
     "name, plus an optional `projectId` query parameter."},
    {kStats, "Counts per project (§2.7), with ETag caching."},
    {kChannels, "Read-only view of NATS chat channels (§2.8); nats backend only."},
    {kEvents, "The WebSocket event stream (§5)."},
};

Json stringSchema() {
  Json s = Json::object();
  s.set("type", Json("string"));
  return s;
}
Json integerSchema() {
  Json s = Json::object();
  s.set("type", Json("integer"));
  return s;
}
Json ref(const std::string& kind, const std::string& name) {
  Json r = Json::object();
  r.set("$ref", Json("#/components/" + kind + "/" + name));
  return r;
}

// A fluent builder for one row of the table.
class Op {
 public:
  Op(const char* method, const char* path, const char* id, const char* tag, const char* summary) {
    d_.method = method;
    d_.path = path;
    d_.operationId = id;
    d_.tag = tag;
    d_.summary = summary;
  }
  Op& describe(std::string text) {
    d_.description = std::move(text);
    return *this;
  }
  Op& query(const char* name, const char* description, Json schema = stringSchema(),
            bool required = false) {
    d_.params.push_back({name, "query", description, std::move(schema), required, false});
    return *this;
  }
  Op& deprecatedQuery(const char* name, const char* description) {
    d_.params.push_back({name, "query", description, stringSchema(), false, true});
    return *this;
  }
  Op& header(const char* name, const char* description) {
    d_.params.push_back({name, "header", description, stringSchema(), false, false});
    return *this;
  }
  Op& path(const char* name, const char* description) {
    d_.params.push_back({name, "path", description, stringSchema(), true, false});
    return *this;
  }
  // cursor and limit of §1.8.
  Op& paged() {
    Json limit = integerSchema();
    limit.set("minimum", Json(1));
    limit.set("maximum", Json(100));
    query("cursor", "Opaque cursor from an earlier nextCursor/prevCursor of this endpoint.");
    return query("limit",
                 "Page size: the leading integer, 50 when none parses, clamped to 1..100. "
                 "Without limit and cursor the whole list is returned.",
                 std::move(limit));
  }
  Op& body(const char* schema, bool required = true) {
    d_.bodySchema = schema;
    d_.bodyRequired = required;
    return *this;
  }
  Op& ok(int status, const char* description, const char* schema) {
    d_.responses.push_back({status, description, schema, "", Json(), {}});
    return *this;
  }
  Op& noBody(int status, const char* description) {
    d_.responses.push_back({status, description, "", "", Json(), {}});
    return *this;
  }
  Op& content(int status, const char* description, const char* contentType, Json schema) {
    d_.responses.push_back({status, description, "", contentType, std::move(schema), {}});
    return *this;
  }
  // An error with this operation's own wording (ErrorEnvelope body).
  Op& error(int status, std::string description) {
    d_.responses.push_back({status, std::move(description), "ErrorEnvelope", "", Json(), {}});
    return *this;
  }
  // Adds a header to the response of that status added last.
  Op& withHeader(int status, const char* name, const char* component) {
    for (auto it = d_.responses.rbegin(); it != d_.responses.rend(); ++it) {
      if (it->status == status) {
        it->headers.emplace_back(name, component);
        break;
      }
    }
    return *this;
  }
  OperationDoc build() const { return d_; }

 private:
  OperationDoc d_;
};

const char* const kTargetId = "Target id, or its name (resolved within projectId when given).";
const char* const kWorkId = "Work item id (a lowercase UUID); any other form is not found.";
const char* const kResolution =
    "Resolution errors: 404 `Target with ID or name <id> not found`; 409 `Target name '<name>' "
    "exists in several projects; use the id or pass projectId`.";
const char* const kFenced =
    "Checks, in order: 400 `agentGuid is required`, `claimToken is required`, then the body "
    "rules; 404 `Work item with ID <id> not found`; 409 `Claim token does not match current "
    "assignment`; 409 when the state does not allow the operation.";

std::vector<OperationDoc> makeOperations() {
  std::vector<Op> ops;

  // ---- §2.1 operational ------------------------------------------------------
  ops.push_back(Op("GET", "/health", "getHealth", kOperational, "Liveness")
                    .describe("200 whenever the process runs; never waits on the backend. "
                              "`backend.connected` is the last known connection state.")
                    .ok(200, "The process is alive.", "Health"));
  ops.push_back(Op("GET", "/ready", "getReady", kOperational, "Readiness")
                    .describe("One cheap backend round trip bounded by kv.timeoutMs (nats: "
                              "JetStream account info; redis: PING; sqlite: SELECT 1).")
                    .ok(200, "The backend answered and everything stored is loaded.", "Ready")
                    .ok(503, "The backend did not answer, or what it stores is still loading.",
                        "NotReady")
                    .withHeader(503, "Retry-After", "RetryAfter"));
  {
    Json text = stringSchema();
    text.set("example", Json("# HELP weft_http_requests_total ...\n# TYPE ..."));
    ops.push_back(
        Op("GET", "/metrics", "getMetrics", kOperational, "Prometheus metrics")
            .describe("Prometheus text format 0.0.4. The `route` label is the route template or "
                      "`unmatched`. Gauges come from in-memory views and keep their last values "
                      "during a backend outage. Public unless metrics.requireAuth is true.")
            .content(200, "The metrics.", "text/plain; version=0.0.4; charset=utf-8",
                     std::move(text)));
  }
  {
    Json object = Json::object();
    object.set("type", Json("object"));
    ops.push_back(
        Op("GET", "/api/openapi.json", "getOpenApi", kOperational, "This OpenAPI document")
            .describe("Describes every endpoint this build serves.")
            .content(200, "The OpenAPI 3.0 document.", "application/json", std::move(object)));
  }
  ops.push_back(Op("GET", "/api/docs", "getDocs", kOperational, "API documentation page")
                    .describe("A static HTML page that loads and renders /api/openapi.json. It "
                              "loads nothing from third-party hosts.")
                    .content(200, "The page.", "text/html; charset=utf-8", stringSchema()));
  ops.push_back(Op("GET", "/api/docs/docs.js", "getDocsScript", kOperational,
                   "Script of the documentation page")
                    .content(200, "The script.", "text/javascript; charset=utf-8", stringSchema()));
  ops.push_back(Op("GET", "/api/docs/docs.css", "getDocsStyle", kOperational,
                   "Style sheet of the documentation page")
                    .content(200, "The style sheet.", "text/css; charset=utf-8", stringSchema()));

  // The operator dashboard (docs/dashboard.md): public like the docs page.
  ops.push_back(Op("GET", "/", "getRoot", kOperational, "Redirect to the dashboard")
                    .describe("302 to /ui, the operator dashboard.")
                    .noBody(302, "Found; `Location: /ui`."));
  ops.push_back(Op("GET", "/ui", "getDashboard", kOperational, "Operator dashboard")
                    .describe("A static HTML page (fleet, work, dead letters, targets, overview) "
                              "that reads the REST API and follows /api/ws. It loads nothing "
                              "from third-party hosts; with tokens configured it asks for one "
                              "and shows nothing until it works.")
                    .content(200, "The page.", "text/html; charset=utf-8", stringSchema()));
  ops.push_back(Op("GET", "/ui/dashboard.js", "getDashboardScript", kOperational,
                   "Script of the dashboard")
                    .content(200, "The script.", "text/javascript; charset=utf-8", stringSchema()));
  ops.push_back(Op("GET", "/ui/dashboard.css", "getDashboardStyle", kOperational,
                   "Style sheet of the dashboard")
                    .content(200, "The style sheet.", "text/css; charset=utf-8", stringSchema()));

  // ---- §2.2 agents -----------------------------------------------------------
  ops.push_back(
      Op("GET", "/api/agents", "listAgents", kAgents, "List agents")
          .describe("Every valid registry entry of all projects, offline and stale agents "
                    "included; all given filters must hold. Order: registeredAt ascending "
                    "(entries without one first), then guid. Reflects any registry write "
                    "within 1 s.")
          .query("type", "Mapped agentType equals the value.")
          .query("status", "Stored status equals the value.")
          .query("capability", "capabilities contains the value.")
          .query("projectId", "The entry's project equals the value (default-project rule).")
          .paged()
          .ok(200, "A page of agents.", "AgentList")
          .error(400,
                 "`Invalid pagination cursor: <reason>` or `Cursor filter mismatch - filters "
                 "changed between requests. Start a new query.`"));
  ops.push_back(
      Op("POST", "/api/agents", "registerAgent", kAgents, "Register or re-register an agent")
          .describe("Stores the given fields plus `status:\"online\"`, registeredAt = "
                    "lastHeartbeat = now; removes an earlier shutdownRequested. 201 when the "
                    "guid was absent (atomic create); 200 when the stored entry is offline, "
                    "stale or the same agent (compare-and-set).")
          .body("AgentRegistration")
          .ok(200, "Re-registered.", "RegisteredAgent")
          .ok(201, "Registered.", "RegisteredAgent")
          .error(400,
                 "A field rule failed, e.g. `handle is required`, `capabilities must be an "
                 "array of non-empty strings`, `guid must be 1-128 characters from "
                 "[A-Za-z0-9_-]`.")
          .error(409, "`Agent with GUID <guid> is already registered and online`"));
  ops.push_back(Op("GET", "/api/agents/{guid}", "getAgent", kAgents, "Get one agent")
                    .describe("Reads the backend directly (no cache). Offline agents included.")
                    .path("guid", "The agent's registry key.")
                    .ok(200, "The agent.", "RegisteredAgent")
                    .error(404, "`Agent with GUID <guid> not found`"));
  ops.push_back(Op("DELETE", "/api/agents/{guid}", "deregisterAgent", kAgents,
                   "Deregister an agent (mark offline)")
                    .describe("Sets `status:\"offline\"` and keeps the entry (idempotent). Work "
                              "still assigned returns to pending when its lease expires.")
                    .path("guid", "The agent's registry key.")
                    .ok(200, "The updated agent.", "RegisteredAgent")
                    .error(404, "`Agent with GUID <guid> not found`"));
  ops.push_back(
      Op("POST", "/api/agents/{guid}/heartbeat", "heartbeatAgent", kAgents,
         "Heartbeat and presence update")
          .describe("Sets lastHeartbeat = now and applies the given fields, preserving every "
                    "other stored member. The response includes shutdownRequested when a "
                    "shutdown was requested: that is how REST agents learn of it.")
          .path("guid", "The agent's registry key.")
          .body("HeartbeatRequest", false)
          .ok(200, "The updated agent.", "RegisteredAgent")
          .error(400,
                 "`status must be online or busy`, `currentTaskCount must be a "
                 "non-negative integer` or `capabilities must be an array of non-empty "
                 "strings`.")
          .error(404, "`Agent with GUID <guid> not found`"));
  ops.push_back(Op("POST", "/api/agents/{guid}/shutdown", "shutdownAgent", kAgents,
                   "Request an agent shutdown")
                    .describe("Records a shutdown request (reason manual) on the entry and, "
                              "with nats, publishes it to the agent. No status is changed.")
                    .path("guid", "The agent's registry key.")
                    .body("AgentShutdownRequest", false)
                    .ok(200, "The request was sent.", "AgentShutdownResponse")
                    .error(404, "`Agent with GUID <guid> not found`"));
  ops.push_back(
      Op("POST", "/api/agents/shutdown-batch", "shutdownAgents", kAgents,
         "Request shutdown of several agents")
          .describe("By explicit guids (unknown ones fail with `Agent not found`) or by filter. "
                    "With graceful:false, an agent holding assigned or in-progress work fails "
                    "with `Agent currently processing work (use graceful: true)`.")
          .body("AgentShutdownBatch")
          .ok(200, "The batch result.", "AgentShutdownBatchResult")
          .error(400,
                 "`Either filter or agentGuids must be provided`, `agentGuids must be an "
                 "array`, a filter type error, or `Invalid reason. Must be one of: manual, "
                 "scaling-down, maintenance, error`."));

  // ---- §2.3 work -------------------------------------------------------------
  ops.push_back(
      Op("POST", "/api/work", "submitWork", kWork, "Submit a work item")
          .describe("Validates, routes (§4.2), stores the item as pending, then emits "
                    "work:submitted and, when no eligible worker of the target type exists and "
                    "spinup.onSubmit is on, requests one spin-up. Equal taskIds produce "
                    "distinct items. With an Idempotency-Key, a retry of the same request "
                    "within work.idempotencyRetentionMs (capped at work.retentionMs) creates "
                    "nothing and gets the first answer again, with Idempotent-Replayed: true; "
                    "this holds across instances and after a 503 (docs/api.md §4.7).")
          .header("Idempotency-Key",
                  "Optional. 1 to 255 printable ASCII characters chosen by the client, one per "
                  "logical request. Scoped per bearer token.")
          .body("WorkSubmission")
          .ok(201, "Submitted, or the recorded answer of an earlier request with this "
                   "Idempotency-Key.", "WorkSubmitted")
          .withHeader(201, "Idempotent-Replayed", "IdempotentReplayed")
          .error(400,
                 "A field rule failed, e.g. `classification is required`, `capability is "
                 "required`, `description is required`, `priority must be an integer "
                 "between 1 and 10`, `notBefore must be an ISO 8601 date-time string "
                 "(e.g. 2026-12-04T10:00:00Z)`, `notBefore and delayMs cannot both be "
                 "given`, `retry.backoff must be one of: none, fixed, exponential`; or "
                 "`Idempotency-Key header must be 1 to 255 printable ASCII characters (...)`.")
          .error(422,
                 "`Idempotency-Key '<key>' was already used with a different request body; use "
                 "a new key for a different request`."));
  ops.push_back(
      Op("GET", "/api/work", "listWork", kWork, "List work items")
          .describe("Order: priority descending, then offeredAt ascending, then id. Items whose "
                    "agent is in the registry carry assignedToAgent.")
          .query("status", "Equality.", ref("schemas", "WorkStatus"))
          .query("boundary", "Equality.")
          .query("capability", "Equality.")
          .deprecatedQuery("classification",
                           "Deprecated alias of boundary, used only when boundary is absent.")
          .query("assignedTo", "Equality with the agent guid.")
          .query("projectId", "Equality; all projects when absent.")
          .paged()
          .ok(200, "A page of work items.", "WorkList")
          .withHeader(200, "X-Deprecated-Param", "XDeprecatedParam")
          .error(400, "An invalid pagination cursor."));
  ops.push_back(Op("GET", "/api/work/{id}", "getWork", kWork, "Get one work item")
                    .describe("Lookup by work item id (never taskId) across all projects.")
                    .path("id", kWorkId)
                    .ok(200, "The work item.", "WorkItem")
                    .error(404, "`Work item with ID <id> not found`"));
  ops.push_back(
      Op("POST", "/api/work/{id}/cancel", "cancelWork", kWork, "Cancel a work item")
          .describe("No body is read. Status cancelled, cancelledAt set, lease removed; the "
                    "assignment and claim token are kept so the agent's next call gets 409.")
          .path("id", kWorkId)
          .ok(200, "`Work item <id> cancelled`", "SuccessMessage")
          .error(404, "`Work item with ID <id> not found`")
          .error(409, "`Cannot cancel work in <status> state` (completed, failed, cancelled)"));
  ops.push_back(
      Op("POST", "/api/work/cancel-batch", "cancelWorkBatch", kWork, "Cancel several work items")
          .describe("By explicit ids (unknown ones fail with `Work item not found`) or by "
                    "filter. Terminal items fail and are listed in notCancellable; with "
                    "reassign:true, assigned and in-progress items return to pending instead.")
          .body("WorkCancelBatch")
          .ok(200, "The batch result.", "WorkCancelBatchResult")
          .error(400,
                 "`Either filter or workItemIds must be provided`, `workItemIds must be an "
                 "array`, `filter.<field> must be a string`, `filter.minPriority must be a "
                 "number` or an invalid reason."));

  // ---- §2.4 work execution ---------------------------------------------------
  ops.push_back(
      Op("POST", "/api/work/claim", "claimWork", kExecution, "Claim the next work item")
          .describe("Candidates: pending items of the effective project whose capability, "
                    "boundary and requiredAgentType fit the agent, in order priority "
                    "descending, offeredAt ascending, id; items whose nextAttemptAt lies in "
                    "the future are skipped. The first compare-and-set that succeeds wins; "
                    "two claimers never get the same item. With waitMs > 0 (long poll) a "
                    "claim that finds nothing waits, holding no server thread, until an "
                    "eligible item becomes claimable on any instance (then claims it) or "
                    "waitMs passes (204). Each new item wakes one waiting claim, the "
                    "longest-waiting eligible one first. A client that closes its "
                    "connection ends its wait; a shutting-down server answers waiting "
                    "claims 204.")
          .body("ClaimRequest")
          .ok(200, "The claimed item with its claim token.", "ClaimedWorkItem")
          .noBody(204, "Nothing is claimable; with waitMs, nothing became claimable within "
                       "waitMs, or the server began to shut down.")
          .error(400,
                 "`agentGuid is required`, `capabilities must be an array of strings`, "
                 "`boundaries must be an array of strings`, the projectId rule, "
                 "`leaseMs must be an integer between 1000 and 86400000`, or "
                 "`waitMs must be an integer between 0 and 30000`.")
          .error(404, "`Agent with GUID <guid> not found`")
          .error(409, "`Agent with GUID <guid> is offline`"));
  ops.push_back(Op("POST", "/api/work/{id}/start", "startWork", kExecution, "Start claimed work")
                    .describe(std::string("From assigned: status in-progress and startedAt; "
                                          "in-progress: idempotent. Extends the lease. ") +
                              kFenced)
                    .path("id", kWorkId)
                    .body("AgentReport")
                    .ok(200, "The updated work item.", "WorkItem")
                    .error(400, "`agentGuid is required` or `claimToken is required`.")
                    .error(404, "`Work item with ID <id> not found`")
                    .error(409,
                           "`Claim token does not match current assignment` or `Cannot "
                           "start work in <status> state`"));
  ops.push_back(
      Op("POST", "/api/work/{id}/progress", "reportProgress", kExecution, "Report progress")
          .describe(std::string("Sets progress and extends the lease; status unchanged. ") +
                    kFenced)
          .path("id", kWorkId)
          .body("ProgressReport")
          .ok(200, "The updated work item.", "WorkItem")
          .error(400,
                 "`progress must be an integer between 0 and 100`, or a missing agentGuid "
                 "or claimToken.")
          .error(404, "`Work item with ID <id> not found`")
          .error(409,
                 "`Claim token does not match current assignment` or `Cannot report "
                 "progress on work in <status> state`"));
  ops.push_back(
      Op("POST", "/api/work/{id}/complete", "completeWork", kExecution, "Complete claimed work")
          .describe(std::string("Status completed, progress 100, result and completedAt; lease "
                                "removed. ") +
                    kFenced)
          .path("id", kWorkId)
          .body("CompletionReport")
          .ok(200, "The updated work item.", "WorkItem")
          .error(400,
                 "`result must be an object`, `result.summary must be a string`, "
                 "`result.artifacts must be an array`, or a missing agentGuid or "
                 "claimToken.")
          .error(404, "`Work item with ID <id> not found`")
          .error(409,
                 "`Claim token does not match current assignment` or `Cannot complete "
                 "work in <status> state`"));
  ops.push_back(
      Op("POST", "/api/work/{id}/fail", "failWork", kExecution, "Fail claimed work")
          .describe(std::string("Records the error, then retries (recoverable and attempts < "
                                "maxAttempts: back to pending) or dead-letters the item. ") +
                    kFenced)
          .path("id", kWorkId)
          .body("FailureReport")
          .ok(200, "The updated work item.", "WorkItem")
          .error(400,
                 "`error is required`, `error.message is required`, `error.code must be a "
                 "string`, `error.recoverable must be a boolean`, or a missing agentGuid "
                 "or claimToken.")
          .error(404, "`Work item with ID <id> not found`")
          .error(409,
                 "`Claim token does not match current assignment` or `Cannot fail work in "
                 "<status> state`"));

  // ---- §2.5 dead-letter queue ------------------------------------------------
  ops.push_back(Op("GET", "/api/dlq", "listDeadLetters", kDlq, "List dead-letter entries")
                    .describe("Order: failedAt ascending, then id.")
                    .query("capability", "Equality with workItem.capability.")
                    .query("projectId", "Equality.")
                    .paged()
                    .ok(200, "A page of entries.", "DeadLetterList")
                    .error(400, "An invalid pagination cursor."));
  ops.push_back(Op("GET", "/api/dlq/{id}", "getDeadLetter", kDlq, "Get one dead-letter entry")
                    .path("id", kWorkId)
                    .ok(200, "The entry.", "DeadLetterEntry")
                    .error(404, "`Dead-letter entry with ID <id> not found`"));
  ops.push_back(
      Op("POST", "/api/dlq/{id}/retry", "retryDeadLetter", kDlq, "Re-queue a dead-lettered item")
          .describe("The work item returns to pending (attempts 0 when resetAttempts; errors "
                    "kept), is recreated from the snapshot when it no longer exists, and the "
                    "entry is deleted.")
          .path("id", kWorkId)
          .body("DlqRetryRequest", false)
          .ok(200, "The re-queued work item.", "WorkItem")
          .error(400, "`resetAttempts must be a boolean`")
          .error(404, "`Dead-letter entry with ID <id> not found`")
          .error(409, "`Cannot retry work in <status> state`"));
  ops.push_back(
      Op("DELETE", "/api/dlq/{id}", "discardDeadLetter", kDlq, "Discard a dead-letter entry")
          .describe("The work item stays failed.")
          .path("id", kWorkId)
          .noBody(204, "Discarded.")
          .error(404, "`Dead-letter entry with ID <id> not found`"));

  // ---- §2.6 targets ----------------------------------------------------------
  ops.push_back(
      Op("GET", "/api/targets", "listTargets", kTargets, "List spin-up targets")
          .describe("Order: registeredAt ascending, then id. Disabled targets are included "
                    "unless filtered out.")
          .query("type", "agentType equality.", ref("schemas", "AgentType"))
          .query("status", "Equality.", ref("schemas", "TargetStatus"))
          .query("capability", "Membership in capabilities.")
          .query("boundary", "Membership in boundaries.")
          .deprecatedQuery("classification",
                           "Deprecated alias of boundary, used only when boundary is absent.")
          .query("mechanism", "Equality.", ref("schemas", "Mechanism"))
          .query("projectId", "Equality; all projects when absent.")
          .paged()
          .ok(200, "A page of targets.", "TargetList")
          .withHeader(200, "X-Deprecated-Param", "XDeprecatedParam")
          .error(400, "An invalid pagination cursor."));
  ops.push_back(
      Op("POST", "/api/targets", "registerTarget", kTargets, "Register a target")
          .describe("The new target is available, healthStatus unknown, registeredBy api. "
                    "Mechanism fields are not validated here: spin-up and test report missing "
                    "ones. Emits target:registered.")
          .body("TargetRegistration")
          .ok(201, "Registered.", "Target")
          .error(400,
                 "A check failed, e.g. `name is required`, `Invalid agentType: <v>. Must "
                 "be copilot-cli or claude-code`, `capabilities must contain at least one "
                 "item`, `Invalid mechanism: <v>. Must be one of: ssh, github-actions, "
                 "local, webhook, kubernetes`.")
          .error(409, "`Target with name '<name>' already exists`"));
  ops.push_back(Op("GET", "/api/targets/{id}", "getTarget", kTargets, "Get one target")
                    .describe(kResolution)
                    .path("id", kTargetId)
                    .query("projectId", "Restricts name resolution to this project.")
                    .ok(200, "The target (with lastSpinUp when one was recorded).", "Target")
                    .error(404, "`Target with ID or name <id> not found`")
                    .error(409, "The name exists in several projects."));
  ops.push_back(Op("PUT", "/api/targets/{id}", "updateTarget", kTargets, "Update a target")
                    .describe(std::string("Emits target:updated. ") + kResolution)
                    .path("id", kTargetId)
                    .query("projectId", "Restricts name resolution to this project.")
                    .body("TargetUpdate")
                    .ok(200, "The updated target.", "Target")
                    .error(400, "A field rule failed (as for registration).")
                    .error(404, "`Target with ID or name <id> not found`")
                    .error(409, "The name exists in several projects."));
  ops.push_back(Op("DELETE", "/api/targets/{id}", "removeTarget", kTargets, "Remove a target")
                    .describe(std::string("Deletes the target by its resolved id and releases "
                                          "its name; emits target:removed. ") +
                              kResolution)
                    .path("id", kTargetId)
                    .query("projectId", "Restricts name resolution to this project.")
                    .ok(200, "`Target <id> removed`", "SuccessMessage")
                    .error(404, "`Target with ID or name <id> not found`")
                    .error(409, "The name exists in several projects."));
  ops.push_back(
      Op("POST", "/api/targets/{id}/test", "testTarget", kTargets, "Probe a target's health")
          .describe("Runs the mechanism's health probe synchronously, limited to "
                    "healthCheck.timeoutMs. Allowed for disabled targets. Missing config fields "
                    "give 200 with healthy:false.")
          .path("id", kTargetId)
          .query("projectId", "Restricts name resolution to this project.")
          .ok(200, "The probe result.", "TargetTestResult")
          .error(403, "`mechanism <m> is disabled by server configuration`")
          .error(404, "`Target with ID or name <id> not found`")
          .error(409, "The name exists in several projects."));
  ops.push_back(
      Op("POST", "/api/targets/{id}/spin-up", "spinUpTarget", kTargets,
         "Start an agent from a target")
          .describe("Returns the active operation of this target when there is one "
                    "(de-duplication). Failures are asynchronous: they are reported through "
                    "lastSpinUp and spin-up:failed.")
          .path("id", kTargetId)
          .query("projectId", "Restricts name resolution to this project.")
          .ok(200, "The operation.", "SpinUpStarted")
          .error(403, "`mechanism <m> is disabled by server configuration`")
          .error(404, "`Target with ID or name <id> not found`")
          .error(409,
                 "The name exists in several projects; `Target <name> is disabled`; or "
                 "`Target <name> is missing required config for mechanism <m>: <fields>`.")
          .error(429, "`Too many concurrent spin-ups (limit <n>)`"));
  ops.push_back(
      Op("POST", "/api/targets/{id}/disable", "disableTarget", kTargets, "Disable a target")
          .describe("Sets status disabled and clears lastError; emits target:disabled.")
          .path("id", kTargetId)
          .query("projectId", "Restricts name resolution to this project.")
          .ok(200, "`Target <id> disabled`", "SuccessMessage")
          .error(404, "`Target with ID or name <id> not found`")
          .error(409, "The name exists in several projects."));
  ops.push_back(Op("POST", "/api/targets/{id}/enable", "enableTarget", kTargets, "Enable a target")
                    .describe("Sets status available whatever it was and clears lastError; "
                              "emits target:updated.")
                    .path("id", kTargetId)
                    .query("projectId", "Restricts name resolution to this project.")
                    .ok(200, "`Target <id> enabled`", "SuccessMessage")
                    .error(404, "`Target with ID or name <id> not found`")
                    .error(409, "The name exists in several projects."));
  ops.push_back(
      Op("POST", "/api/targets/disable-batch", "disableTargets", kTargets,
         "Disable several targets")
          .describe("Unknown or ambiguous entries fail with `Target not found`; an already "
                    "disabled target counts as a success and is listed in alreadyDisabled.")
          .body("TargetDisableBatch")
          .ok(200, "The batch result.", "TargetDisableBatchResult")
          .error(400,
                 "`Either filter or targetIds must be provided`, `targetIds must be an "
                 "array`, `filter.agentType must be copilot-cli or claude-code`, or "
                 "`filter.status must be a string` / `filter.mechanism must be a "
                 "string`."));

  ops.push_back(
      Op("GET", "/api/spinup/mechanisms", "getSpinUpMechanisms", kTargets,
         "Spin-up mechanisms this server allows")
          .describe("Read-only view of the spinup.allow* settings, so a client can tell a "
                    "mechanism that is off (test and spin-up answer 403) before trying. Does "
                    "not touch the backend.")
          .ok(200, "The mechanisms.", "SpinUpMechanisms"));

  // ---- §2.7 stats ------------------------------------------------------------
  ops.push_back(Op("GET", "/api/stats", "getStats", kStats, "Global and per-project counts")
                    .describe("Counts over all known projects. Cached by ETag: a matching "
                              "If-None-Match gives 304.")
                    .header("If-None-Match", "An ETag from an earlier response.")
                    .ok(200, "The counts.", "StatsOverview")
                    .withHeader(200, "ETag", "ETag")
                    .withHeader(200, "Cache-Control", "CacheControl")
                    .noBody(304, "Not modified.")
                    .withHeader(304, "ETag", "ETag")
                    .withHeader(304, "Cache-Control", "CacheControl"));
  ops.push_back(Op("GET", "/api/stats/projects", "listProjects", kStats, "Known project ids")
                    .describe("The project set of /api/stats, sorted ascending. Cached by ETag.")
                    .header("If-None-Match", "An ETag from an earlier response.")
                    .ok(200, "The projects.", "ProjectList")
                    .withHeader(200, "ETag", "ETag")
                    .withHeader(200, "Cache-Control", "CacheControl")
                    .noBody(304, "Not modified.")
                    .withHeader(304, "ETag", "ETag")
                    .withHeader(304, "Cache-Control", "CacheControl"));

  // ---- §2.8 channels ---------------------------------------------------------
  {
    Json project = ref("schemas", "ProjectId");
    ops.push_back(
        Op("GET", "/api/channels", "listChannels", kChannels, "Channels of a project")
            .describe("Streams named `<P>_...` whose subjects are exactly `[\"<P>.<name>\"]`, "
                      "sorted by name; the three default channels when none qualifies.")
            .query("projectId", "The project (required).", project, true)
            .ok(200, "The channels.", "ChannelList")
            .error(400, "`projectId query parameter is required` or the projectId rule.")
            .error(501, "`channels require the nats backend`"));
    Json limit = integerSchema();
    limit.set("minimum", Json(1));
    limit.set("maximum", Json(1000));
    limit.set("default", Json(50));
    ops.push_back(
        Op("GET", "/api/channels/{name}/messages", "listChannelMessages", kChannels,
           "Newest messages of a channel")
            .describe("The newest `limit` messages, oldest first. A missing or non-qualifying "
                      "stream gives an empty list.")
            .path("name", "Channel name, `^[a-z0-9][a-z0-9-]{0,63}$`.")
            .query("projectId", "The project (required).", project, true)
            .query("limit", "The leading integer; unparseable or 0 gives 50; clamped to 1..1000.",
                   std::move(limit))
            .ok(200, "The messages.", "ChannelMessages")
            .error(400,
                   "`Invalid channel name: <name>`, `projectId query parameter is "
                   "required` or the projectId rule.")
            .error(500, "`Failed to read messages from <name>: <reason>`")
            .error(501, "`channels require the nats backend`"));
  }

  // ---- §5 events -------------------------------------------------------------
  ops.push_back(
      Op("GET", "/api/ws", "openEventStream", kEvents, "WebSocket event stream")
          .describe("Upgrade to a WebSocket. With tokens configured, the `token` query "
                    "parameter is checked first (an invalid one is rejected even when a valid "
                    "subprotocol token is offered); otherwise the element after `bearer` in "
                    "Sec-WebSocket-Protocol. Clients send subscribe, unsubscribe and ping "
                    "messages; the server sends events, stats and acks (§5).")
          .query("token", "The bearer token, for clients that cannot set headers.")
          .header("Sec-WebSocket-Protocol", "`bearer, <token>`; the first offered is echoed.")
          .noBody(101, "Switching protocols.")
          .error(401, "`Invalid token` or `No token provided`."));

  std::vector<OperationDoc> out;
  out.reserve(ops.size());
  for (const Op& op : ops) out.push_back(op.build());
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Names of the {param} segments of a template, in order (catch-alls without '*').
std::vector<std::string> pathParams(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = path.find('{', pos)) != std::string::npos) {
    const size_t end = path.find('}', pos);
    if (end == std::string::npos) break;
    std::string name = path.substr(pos + 1, end - pos - 1);
    if (!name.empty() && name.back() == '*') name.pop_back();
    out.push_back(name);
    pos = end + 1;
  }
  return out;
}

Json paramJson(const ParamDoc& p) {
  Json j = Json::object();
  j.set("name", Json(p.name));
  j.set("in", Json(p.in));
  if (!p.description.empty()) j.set("description", Json(p.description));
  j.set("required", Json(p.required || p.in == "path"));
  if (p.deprecated) j.set("deprecated", Json(true));
  j.set("schema", p.schema.isNull() ? stringSchema() : p.schema);
  return j;
}

Json responseJson(const ResponseDoc& r) {
  Json j = Json::object();
  j.set("description", Json(r.description));
  if (!r.headers.empty()) {
    Json headers = Json::object();
    for (const auto& [name, component] : r.headers) headers.set(name, ref("headers", component));
    j.set("headers", std::move(headers));
  }
  if (!r.schemaRef.empty() || !r.contentType.empty()) {
    Json media = Json::object();
    media.set("schema", r.schemaRef.empty() ? r.schema : ref("schemas", r.schemaRef));
    Json content = Json::object();
    content.set(r.contentType.empty() ? "application/json" : r.contentType, std::move(media));
    j.set("content", std::move(content));
  }
  return j;
}

bool hasResponse(const OperationDoc& op, int status) {
  for (const auto& r : op.responses) {
    if (r.status == status) return true;
  }
  return false;
}

Json operationJson(const OperationDoc& op) {
  const bool isProtected = http::Router::protectedByDefault(op.path);
  const bool isMetrics = op.path == "/metrics";
  const bool isWebSocket = op.path == "/api/ws";
  // Everything under /api/ that needs auth also needs storage, except the
  // WebSocket handshake (docs/api.md §1.9) and the spin-up mechanisms.
  // The mechanisms view reads the configuration only.
  const bool usesStorage = isProtected && !isWebSocket && op.path != "/api/spinup/mechanisms";

  Json j = Json::object();
  j.set("operationId", Json(op.operationId));
  j.set("tags", Json(Json::Array{Json(op.tag)}));
  j.set("summary", Json(op.summary));
  if (!op.description.empty()) j.set("description", Json(op.description));

  // Path parameters follow the template; their texts come from the table.
  Json params = Json::array();
  for (const std::string& name : pathParams(op.path)) {
    ParamDoc p{name, "path", "", stringSchema(), true, false};
    for (const ParamDoc& given : op.params) {
      if (given.in == "path" && given.name == name) p = given;
    }
    params.push(paramJson(p));
  }
  for (const ParamDoc& p : op.params) {
    if (p.in != "path") params.push(paramJson(p));
  }
  if (params.size() > 0) j.set("parameters", std::move(params));

  if (!op.bodySchema.empty()) {
    Json media = Json::object();
    media.set("schema", ref("schemas", op.bodySchema));
    Json content = Json::object();
    content.set("application/json", std::move(media));
    Json body = Json::object();
    body.set("required", Json(op.bodyRequired));
    body.set("description",
             Json("Parsed as JSON when Content-Type is application/json or */*+json; an empty "
                  "body or another content type counts as {}."));
    body.set("content", std::move(content));
    j.set("requestBody", std::move(body));
  }

  std::map<int, Json> responses;
  for (const ResponseDoc& r : op.responses) responses[r.status] = responseJson(r);
  auto standard = [&](int status, const char* component) {
    if (!hasResponse(op, status)) responses[status] = ref("responses", component);
  };
  if (isProtected && !isWebSocket) standard(401, "Unauthorized");
  if (isMetrics && !hasResponse(op, 401)) {
    Json r = ref("responses", "Unauthorized");
    responses[401] = std::move(r);
  }
  if (!op.bodySchema.empty()) {
    standard(400, "BadRequest");
    standard(413, "PayloadTooLarge");
  }
  if (usesStorage) {
    standard(500, "InternalError");
    standard(503, "ServiceUnavailable");
  }
  Json responsesJson = Json::object();
  for (auto& [status, r] : responses) responsesJson.set(std::to_string(status), std::move(r));
  j.set("responses", std::move(responsesJson));

  if (isMetrics) {
    // Public by default; bearer auth only with metrics.requireAuth.
    Json none = Json::object();
    Json bearer = Json::object();
    bearer.set("bearerAuth", Json::array());
    j.set("security", Json(Json::Array{std::move(none), std::move(bearer)}));
  } else if (isWebSocket) {
    Json ws = Json::object();
    ws.set("wsToken", Json::array());
    j.set("security", Json(Json::Array{std::move(ws)}));
  } else if (!isProtected) {
    j.set("security", Json::array());
  }
  return j;
}

std::string key(const std::string& method, const std::string& path) {
  return method + " " + path;
}

}  // namespace

const std::vector<OperationDoc>& contractOperations() {
  static const std::vector<OperationDoc> kOperations = makeOperations();
  return kOperations;
}

Json buildOpenApi(const std::vector<http::RouteInfo>& routes) {
  const auto componentsText = embeddedFile("openapi_components.json");
  if (!componentsText) throw std::runtime_error("openapi_components.json is not embedded");
  auto components = Json::parse(*componentsText, 64);
  if (!components || !components->isObject()) {
    throw std::runtime_error("openapi_components.json does not parse: " +
                             components.status().message());
  }

  // Every operation of the table is served (tests/openapi_test.cpp checks
  // both directions against the router).
  Json paths = Json::object();
  std::set<std::string> documented;
  for (const OperationDoc& op : contractOperations()) {
    const std::string k = key(op.method, op.path);
    documented.insert(k);
    Json* item = paths.find(op.path);
    if (!item) item = &paths.set(op.path, Json::object());
    item->set(lower(op.method), operationJson(op));
  }
  // Served but not in the table: still listed, so the document never hides a
  // route; the OpenAPI test fails on these.
  for (const auto& r : routes) {
    const std::string k = key(r.method, r.pathTemplate);
    if (documented.count(k)) continue;
    documented.insert(k);
    OperationDoc op;
    op.method = r.method;
    op.path = r.pathTemplate;
    op.operationId = "undocumented_" + lower(r.method) + "_" + r.pathTemplate;
    op.tag = "Undocumented";
    op.summary = "Undocumented route";
    op.responses.push_back({200, "Not documented.", "", "", Json(), {}});
    Json operation = operationJson(op);
    operation.set("x-weft-status", Json("undocumented"));
    Json* item = paths.find(op.path);
    if (!item) item = &paths.set(op.path, Json::object());
    item->set(lower(op.method), std::move(operation));
  }

  Json info = Json::object();
  info.set("title", Json("Weft API"));
  info.set("version", Json(WEFT_VERSION));
  info.set("description",
           Json("Weft coordinates fleets of AI agents: a shared agent registry, work items with "
                "a claim/lease lifecycle, retries and a dead-letter queue, spin-up targets and "
                "a WebSocket event stream. Errors use the envelope `{error, message, "
                "details?}`. Bearer auth applies to every /api/ path except this document and "
                "the docs page when http.tokens is configured. A storage outage gives 503 "
                "with Retry-After, never 500."));

  Json tags = Json::array();
  for (const TagDoc& t : kTags) {
    Json tag = Json::object();
    tag.set("name", Json(t.name));
    tag.set("description", Json(t.description));
    tags.push(std::move(tag));
  }

  Json server = Json::object();
  server.set("url", Json("/"));
  Json bearer = Json::object();
  bearer.set("bearerAuth", Json::array());

  Json doc = Json::object();
  doc.set("openapi", Json("3.0.3"));
  doc.set("info", std::move(info));
  doc.set("servers", Json(Json::Array{std::move(server)}));
  doc.set("security", Json(Json::Array{std::move(bearer)}));
  doc.set("tags", std::move(tags));
  doc.set("paths", std::move(paths));
  doc.set("components", std::move(components.value()));
  return doc;
}

}  // namespace weft::docs
