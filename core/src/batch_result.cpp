#include "weft/batch_result.h"

#include "weft/clock.h"

namespace weft {

Json BatchResult::toJson(int64_t nowMs) const {
  const auto ok = static_cast<int64_t>(success_.size());
  const auto total = ok + static_cast<int64_t>(failed_.size());
  Json out = Json::object();
  out.set("success", success_);
  out.set("failed", failed_);
  out.set("count", Json(ok));
  out.set("errors", errors_);
  out.set("completedAt", Json(formatIso(nowMs)));
  out.set("totalProcessed", Json(total));
  out.set("successRate", Json(total == 0 ? 0.0
                                         : 100.0 * static_cast<double>(ok) /
                                               static_cast<double>(total)));
  return out;
}

}  // namespace weft
