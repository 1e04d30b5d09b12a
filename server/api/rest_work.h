// The REST mapping of work items (docs/api.md §2.3, §2.4, §3.4): request
// bodies parsed into WorkQueue's typed requests, with the field rules that
// need nothing but the body (in the order and with the messages of the
// contract), and the service's results rendered as response bodies.
#pragma once

#include <optional>
#include <string>

#include "weft/json.h"
#include "weft/json_list_stream.h"
#include "weft/status.h"
#include "weft/work_queue.h"

namespace weft::rest {

// POST /api/work.
Result<SubmitRequest> parseSubmitRequest(const Json& body);
// The Idempotency-Key header of POST /api/work (nullopt: absent): 1 to 255
// printable ASCII characters (0x20-0x7E), else InvalidArgument naming the
// header. The key's scope is the caller's bearer token (as a digest), so
// callers with different tokens never share keys; "" when none was sent.
Result<std::optional<IdempotencyKey>> parseIdempotencyKey(
    const std::optional<std::string>& header, const std::optional<std::string>& bearerToken);
// POST /api/work/claim.
Result<ClaimRequest> parseClaimRequest(const Json& body);
// POST /api/work/{id}/start: agentGuid and claimToken.
Result<ClaimHolder> parseClaimHolder(const Json& body);
// POST /api/work/{id}/progress, /complete, /fail.
Result<ProgressReport> parseProgressReport(const Json& body);
Result<CompleteReport> parseCompleteReport(const Json& body);
Result<FailReport> parseFailReport(const Json& body);
// POST /api/work/cancel-batch.
Result<CancelBatchRequest> parseCancelBatchRequest(const Json& body);

// The WorkItem of §3.4: the stored item without claimToken, plus
// assignedToAgent when the assignee is known.
Json toJson(const WorkItemView& view);
// The claim response: the WorkItem plus its claimToken.
Json toJson(const ClaimedItem& claimed);
// The 201 body of a submission: id, workItemId, targetAgentType,
// spinUpTriggered, estimatedWaitSeconds?.
Json toJson(const Submitted& submitted);
// The batch result of §2.3 (§3.8 plus cancelledItems, reassignedItems,
// notCancellable).
Json toJson(const CancelBatchResult& result);
// POST /api/work/{id}/cancel: {success, message}.
Json cancelledJson(const std::string& id);
// GET /api/work: {workItems, ...pagination}, each item rendered as it is
// read (json_list_stream.h).
JsonListStream toJsonStream(WorkPage page);
// The same document as one value.
Json toJson(const WorkPage& page);

}  // namespace weft::rest
