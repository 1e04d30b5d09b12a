// The common part of every batch response (docs/api.md §3.8).
#pragma once

#include <string>

#include "weft/json.h"

namespace weft {

class BatchResult {
 public:
  void succeed(const std::string& id) { success_.push(Json(id)); }
  void fail(const std::string& id, const std::string& error) {
    failed_.push(Json(id));
    errors_.set(id, Json(error));
  }
  const Json& success() const { return success_; }
  // success, failed, count, errors, completedAt, totalProcessed, successRate.
  Json toJson(int64_t nowMs) const;

 private:
  Json success_ = Json::array();
  Json failed_ = Json::array();
  Json errors_ = Json::object();
};

}  // namespace weft
