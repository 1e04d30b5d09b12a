// The Channels service seen through its REST form (server/api/rest_mapping.h),
// so the channel tests check the bodies clients get, not only the typed values.
#pragma once

#include <optional>
#include <string>

#include "api/rest_mapping.h"
#include "weft/channels.h"

namespace weft::testing {

class RestChannels {
 public:
  explicit RestChannels(const ServiceContext& ctx) : service_(ctx) {}

  Result<Json> list(const std::optional<std::string>& projectId) const {
    return rest::rendered(service_.list(projectId));
  }
  Result<Json> messages(const std::string& name, const std::optional<std::string>& projectId,
                        const std::optional<std::string>& limit) const {
    return rest::rendered(service_.messages(name, projectId, limit));
  }

 private:
  Channels service_;
};

}  // namespace weft::testing
