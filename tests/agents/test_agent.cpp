// A minimal agent for the spin-up end-to-end tests: what a `local` target
// starts. It talks to Weft over REST only:
//   1. registers, with the target id it was started for (LOOMINAL_TARGET_ID)
//      in metadata.targetId, so Weft can link it to the spin-up;
//   2. claims work for its capability until it gets an item (bounded);
//   3. starts and completes that item;
//   4. deregisters and exits 0 (1 on any failure).
//
//   test_agent --capability <c> [--log <file>] [--wait-ms <n>]
//
// Environment: WEFT_URL (required, set by Weft for local children),
// LOOMINAL_TARGET_ID, LOOMINAL_AGENT_TYPE, LOOMINAL_PROJECT_ID and
// WEFT_WORK_ITEM_ID (logged; the agent claims whatever it is offered).
// Each step is appended to the --log file, which the test reads.
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "weft/json.h"

namespace {

using weft::Json;

std::string logPath;

void note(const std::string& line) {
  if (logPath.empty()) return;
  std::ofstream(logPath, std::ios::app) << line << "\n";
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

struct Reply {
  int status = 0;
  Json body;
};

Reply request(const Poco::URI& base, const std::string& method, const std::string& path,
              const Json* body) {
  Poco::Net::HTTPClientSession session(base.getHost(), base.getPort());
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  std::string text = body ? body->dump() : "";
  if (body) {
    req.setContentType("application/json");
    req.setContentLength(static_cast<std::streamsize>(text.size()));
  }
  session.sendRequest(req) << text;
  Poco::Net::HTTPResponse resp;
  std::istream& in = session.receiveResponse(resp);
  std::string raw;
  Poco::StreamCopier::copyToString(in, raw);
  Reply r;
  r.status = static_cast<int>(resp.getStatus());
  if (!raw.empty()) {
    auto parsed = Json::parse(raw);
    if (parsed) r.body = *parsed;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string capability;
  int waitMs = 30000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--capability") capability = argv[i + 1];
    if (flag == "--log") logPath = argv[i + 1];
    if (flag == "--wait-ms") waitMs = std::atoi(argv[i + 1]);
  }
  try {
    const std::string url = env("WEFT_URL");
    const std::string targetId = env("LOOMINAL_TARGET_ID");
    note("started url=" + url + " targetId=" + targetId +
         " workItemId=" + env("WEFT_WORK_ITEM_ID") + " projectId=" + env("LOOMINAL_PROJECT_ID"));
    if (url.empty() || capability.empty()) {
      note("error: WEFT_URL and --capability are required");
      return 1;
    }
    const Poco::URI base(url);

    Json reg = Json::object();
    reg.set("handle", Json("test-agent"));
    reg.set("capabilities", Json(Json::Array{Json(capability)}));
    if (!env("LOOMINAL_PROJECT_ID").empty()) reg.set("projectId", Json(env("LOOMINAL_PROJECT_ID")));
    Json metadata = Json::object();
    metadata.set("targetId", Json(targetId));
    const std::string type = env("LOOMINAL_AGENT_TYPE");
    if (type == "claude-code" || type == "copilot-cli") metadata.set("agentType", Json(type));
    reg.set("metadata", std::move(metadata));
    Reply registered = request(base, "POST", "/api/agents", &reg);
    if (registered.status != 201 && registered.status != 200) {
      note("error: register answered " + std::to_string(registered.status));
      return 1;
    }
    const std::string guid = registered.body.getString("guid");
    note("registered guid=" + guid);

    Json claimBody = Json::object();
    claimBody.set("agentGuid", Json(guid));
    Json item;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
    while (std::chrono::steady_clock::now() < until) {
      Reply claimed = request(base, "POST", "/api/work/claim", &claimBody);
      if (claimed.status == 200) {
        item = claimed.body;
        break;
      }
      if (claimed.status != 204) {
        note("error: claim answered " + std::to_string(claimed.status));
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!item.isObject()) {
      note("error: nothing to claim");
      return 1;
    }
    const std::string workId = item.getString("id");
    note("claimed workId=" + workId);

    Json fenced = Json::object();
    fenced.set("agentGuid", Json(guid));
    fenced.set("claimToken", item.get("claimToken"));
    if (request(base, "POST", "/api/work/" + workId + "/start", &fenced).status != 200) {
      note("error: start failed");
      return 1;
    }
    Json result = Json::object();
    result.set("summary", Json("done by test agent"));
    fenced.set("result", std::move(result));
    if (request(base, "POST", "/api/work/" + workId + "/complete", &fenced).status != 200) {
      note("error: complete failed");
      return 1;
    }
    note("completed workId=" + workId);
    request(base, "DELETE", "/api/agents/" + guid, nullptr);
    note("deregistered");
    return 0;
  } catch (const Poco::Exception& e) {
    note("error: " + e.displayText());
  } catch (const std::exception& e) {
    note(std::string("error: ") + e.what());
  }
  return 1;
}
