// The REST form of the spin-up targets (docs/api.md §2.6, §3.6): request
// bodies parsed into the Targets service's typed requests, with the field
// rules and their messages, and its results rendered as response bodies.
#pragma once

#include <memory>

#include "weft/json.h"
#include "weft/status.h"
#include "weft/targets.h"

namespace weft::rest {

// POST /api/targets. InvalidArgument naming the first field that breaks a
// rule, in the order of the §2.6 table.
Result<CreateTargetRequest> parseCreateTargetRequest(const Json& body);
// PUT /api/targets/{id}: the rules that need only the body, in the order of
// the §2.6 PUT table (the config is checked against the target's mechanism
// by the service).
Result<UpdateTargetRequest> parseUpdateTargetRequest(const Json& body);
// POST /api/targets/disable-batch: targetIds (at most 1000) or filter
// {agentType, status, mechanism}, projectId.
Result<DisableBatchRequest> parseDisableBatchRequest(const Json& body);

// A Target (§3.6): the stored value, as stored.
Json toJson(const TargetRecord& target);
Result<Json> rendered(const Result<std::shared_ptr<const TargetRecord>>& result);
// GET /api/targets: targets plus the pagination metadata (§1.8).
Json toJson(const TargetPage& page);
// DELETE, enable, disable: {"success":true,"message":"Target <ref> removed"}
// (enabled, disabled).
Json toJson(const TargetChange& change);
// POST /api/targets/disable-batch: the batch members (§3.8),
// disabledTargets, alreadyDisabled.
Json toJson(const DisableBatchResult& result);
// POST /api/targets/{id}/test: healthy, latencyMs, responseTimeMs, error
// (when unhealthy), targetId, timestamp.
Json toJson(const TargetTestResult& result);
// POST /api/targets/{id}/spin-up: operationId, targetName, targetId, status,
// success, timestamp.
Json toJson(const SpinUpStarted& started);

}  // namespace weft::rest
