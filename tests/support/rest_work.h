// The WorkQueue service seen through its REST form (server/api/rest_work.h):
// request bodies parsed as the routes parse them, results rendered as the
// routes render them, so the lifecycle tests check the bodies clients send
// and get, not only the typed values.
#pragma once

#include <optional>
#include <string>

#include "api/rest_mapping.h"
#include "weft/work_queue.h"

namespace weft::testing {

class RestWork {
 public:
  explicit RestWork(WorkQueue& work) : work_(work) {}

  Result<Json> submit(const Json& body) {
    return rest::parsedThenRendered(body, rest::parseSubmitRequest,
                      [&](const SubmitRequest& r) { return work_.submit(r); });
  }
  Result<Json> get(const std::string& id) const { return rest::rendered(work_.get(id)); }
  Result<Json> list(const WorkFilter& filter, const PageRequest& page) const {
    return rest::rendered(work_.list(filter, page));
  }
  Result<Json> cancel(const std::string& id) {
    auto cancelled = work_.cancel(id);
    if (!cancelled) return cancelled.status();
    return rest::cancelledJson(id);
  }
  Result<Json> cancelBatch(const Json& body) {
    return rest::parsedThenRendered(body, rest::parseCancelBatchRequest,
                      [&](const CancelBatchRequest& r) { return work_.cancelBatch(r); });
  }
  Result<std::optional<Json>> claim(const Json& body) {
    auto request = rest::parseClaimRequest(body);
    if (!request) return request.status();
    auto claimed = work_.claim(*request);
    if (!claimed) return claimed.status();
    if (!claimed->has_value()) return std::optional<Json>{};
    return std::optional<Json>(rest::toJson(**claimed));
  }
  Result<Json> start(const std::string& id, const Json& body) {
    return report(id, body, rest::parseClaimHolder, &WorkQueue::start);
  }
  Result<Json> progress(const std::string& id, const Json& body) {
    return report(id, body, rest::parseProgressReport, &WorkQueue::progress);
  }
  Result<Json> complete(const std::string& id, const Json& body) {
    return report(id, body, rest::parseCompleteReport, &WorkQueue::complete);
  }
  Result<Json> fail(const std::string& id, const Json& body) {
    return report(id, body, rest::parseFailReport, &WorkQueue::fail);
  }
  Result<Json> retryDeadLetter(const std::string& id, bool resetAttempts = true) {
    return rest::rendered(work_.retryDeadLetter(id, resetAttempts));
  }

 private:
  template <typename Report>
  Result<Json> report(const std::string& id, const Json& body,
                      Result<Report> (*parse)(const Json&),
                      Result<WorkItemView> (WorkQueue::*method)(const std::string&, const Report&)) {
    return rest::parsedThenRendered(
        body, parse, [&](const Report& r) { return (work_.*method)(id, r); });
  }

  WorkQueue& work_;
};

}  // namespace weft::testing
