// The Targets service seen through its REST form (server/api/rest_targets.h):
// bodies parsed at the edge, the typed service called, results rendered, so
// the target tests check the bodies and messages clients get.
#pragma once

#include <optional>
#include <string>

#include "api/rest_targets.h"
#include "weft/targets.h"

namespace weft::testing {

class RestTargets {
 public:
  using Project = std::optional<std::string>;
  explicit RestTargets(Targets& targets) : targets_(targets) {}

  Result<Json> list(const TargetFilter& filter, const PageRequest& page) const {
    return rendered(targets_.list(filter, page));
  }
  Result<Json> get(const std::string& ref, const Project& projectId) const {
    return rest::rendered(targets_.get(ref, projectId));
  }
  Result<Json> create(const Json& body) {
    auto request = rest::parseCreateTargetRequest(body);
    if (!request) return request.status();
    return rest::rendered(targets_.create(*request));
  }
  Result<Json> update(const std::string& ref, const Project& projectId, const Json& body) {
    auto request = rest::parseUpdateTargetRequest(body);
    if (!request) return request.status();
    return rest::rendered(targets_.update(ref, projectId, *request));
  }
  Result<Json> remove(const std::string& ref, const Project& projectId) {
    return rendered(targets_.remove(ref, projectId));
  }
  Result<Json> enable(const std::string& ref, const Project& projectId) {
    return rendered(targets_.enable(ref, projectId));
  }
  Result<Json> disable(const std::string& ref, const Project& projectId) {
    return rendered(targets_.disable(ref, projectId));
  }
  Result<Json> disableBatch(const Json& body) {
    auto request = rest::parseDisableBatchRequest(body);
    if (!request) return request.status();
    return rendered(targets_.disableBatch(*request));
  }
  Result<Json> test(const std::string& ref, const Project& projectId) {
    return rendered(targets_.test(ref, projectId));
  }
  Result<Json> spinUpTarget(const std::string& ref, const Project& projectId) {
    return rendered(targets_.spinUpTarget(ref, projectId));
  }

 private:
  template <typename T>
  static Result<Json> rendered(const Result<T>& result) {
    if (!result) return result.status();
    return rest::toJson(*result);
  }

  Targets& targets_;
};

}  // namespace weft::testing
