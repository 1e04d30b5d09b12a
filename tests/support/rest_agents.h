// The AgentRegistry seen through its REST form (server/api/rest_agents.h):
// bodies parsed at the edge, the typed service called, results rendered, so
// the registry tests check the bodies and messages clients get.
#pragma once

#include <string>

#include "api/rest_agents.h"
#include "weft/agent_registry.h"

namespace weft::testing {

class RestAgents {
 public:
  explicit RestAgents(AgentRegistry& agents) : agents_(agents) {}

  struct Registration {
    Json agent;
    bool created = false;
  };
  Result<Registration> registerAgent(const Json& body) {
    auto request = rest::parseRegisterRequest(body);
    if (!request) return request.status();
    auto reg = agents_.registerAgent(*request);
    if (!reg) return reg.status();
    return Registration{rest::toJson(*reg->agent, agents_.isStale(*reg->agent)), reg->created};
  }
  Result<Json> heartbeat(const std::string& guid, const Json& body) {
    auto request = rest::parseHeartbeatRequest(body);
    if (!request) return request.status();
    return rest::rendered(agents_, agents_.heartbeat(guid, *request));
  }
  Result<Json> deregister(const std::string& guid) {
    return rest::rendered(agents_, agents_.deregister(guid));
  }
  Result<Json> get(const std::string& guid) const {
    return rest::rendered(agents_, agents_.get(guid));
  }
  // GET /api/agents: the body as sent.
  Result<std::string> list(const AgentFilter& filter, const PageRequest& page) const {
    auto result = agents_.list(filter, page);
    if (!result) return result.status();
    return rest::toListStream(std::move(*result)).renderAll();
  }

 private:
  AgentRegistry& agents_;
};

}  // namespace weft::testing
