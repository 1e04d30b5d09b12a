// The stored form of a work item (weft/work_item.h): decode and encode give
// back every value byte for byte, member order included, whatever its status
// and history, and whatever other software added to it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "support/work_entry_equal.h"
#include "weft/work_item.h"

using namespace weft;

namespace {

const std::string kHead =
    R"({"id":"6f1c1a4e-0b8e-4a43-9d43-3e3bb3a4b0a1","taskId":"t-1","projectId":"default",)"
    R"("description":"Fix the \"bug\"\n","capability":"code","boundary":"internal","priority":7,)";

const std::vector<std::string> kStored = {
    // pending, as submitted (every optional member)
    kHead + R"("deadline":"2026-01-01T00:00:00Z","contextData":{"files":["a.c"],"n":1.5},)"
            R"("preferredAgentType":"claude-code","requiredAgentType":"claude-code",)"
            R"("targetAgentType":"claude-code","status":"pending","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z",)"
            R"("attempts":0,"maxAttempts":3,"leaseMs":60000,"errors":[],)"
            R"("transitions":[{"seq":1,"event":"submitted","at":"2026-01-01T00:00:00.000Z"}]})",
    // assigned
    kHead + R"("targetAgentType":"claude-code","status":"assigned","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:01.000Z",)"
            R"("attempts":1,"maxAttempts":3,"errors":[],"transitions":[{"seq":1,"event":"submitted",)"
            R"("at":"2026-01-01T00:00:00.000Z"},{"seq":2,"event":"assigned","at":"2026-01-01T00:00:01.000Z",)"
            R"("attempt":1,"agentGuid":"g1","leaseExpiresAt":"2026-01-01T00:05:01.000Z"}],)"
            R"("assignedTo":"g1","assignedAt":"2026-01-01T00:00:01.000Z","leaseDurationMs":300000,)"
            R"("leaseExpiresAt":"2026-01-01T00:05:01.000Z","claimToken":"tok"})",
    // in-progress with progress
    kHead + R"("targetAgentType":"claude-code","status":"in-progress","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:03.000Z",)"
            R"("attempts":1,"maxAttempts":3,"errors":[],"transitions":[],"assignedTo":"g1",)"
            R"("assignedAt":"2026-01-01T00:00:01.000Z","leaseDurationMs":300000,)"
            R"("leaseExpiresAt":"2026-01-01T00:05:03.000Z","claimToken":"tok",)"
            R"("startedAt":"2026-01-01T00:00:02.000Z","progress":40})",
    // pending again after a retry, then assigned: error after transitions,
    // the assignment after error
    kHead + R"("targetAgentType":"claude-code","status":"assigned","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:09.000Z",)"
            R"("attempts":2,"maxAttempts":3,"errors":[{"message":"boom","code":"E1",)"
            R"("recoverable":true,"occurredAt":"2026-01-01T00:00:05.000Z","attempt":1,"agentGuid":"g1"}],)"
            R"("transitions":[{"seq":3,"event":"failed","at":"2026-01-01T00:00:05.000Z","attempt":1,)"
            R"("agentGuid":"g1","error":0,"retrying":true,"deadLettered":false}],)"
            R"("error":{"message":"boom","code":"E1","recoverable":true,)"
            R"("occurredAt":"2026-01-01T00:00:05.000Z","attempt":1,"agentGuid":"g1"},)"
            R"("assignedTo":"g2","assignedAt":"2026-01-01T00:00:09.000Z","leaseDurationMs":300000,)"
            R"("leaseExpiresAt":"2026-01-01T00:05:09.000Z","claimToken":"tok2"})",
    // completed
    kHead + R"("targetAgentType":"copilot-cli","status":"completed","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:04.000Z",)"
            R"("attempts":1,"maxAttempts":3,"errors":[],"transitions":[],"assignedTo":"g1",)"
            R"("assignedAt":"2026-01-01T00:00:01.000Z","claimToken":"tok",)"
            R"("startedAt":"2026-01-01T00:00:02.000Z","progress":100,"result":{"summary":"ok",)"
            R"("artifacts":[{"path":"x"}],"completedAt":"2026-01-01T00:00:04.000Z"},)"
            R"("completedAt":"2026-01-01T00:00:04.000Z"})",
    // failed for good, a lease expiry without agentGuid among the errors
    kHead + R"("targetAgentType":"claude-code","status":"failed","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:05.000Z",)"
            R"("attempts":1,"maxAttempts":1,"errors":[{"message":"lease expired",)"
            R"("code":"LEASE_EXPIRED","recoverable":true,"occurredAt":"2026-01-01T00:00:05.000Z",)"
            R"("attempt":1}],"transitions":[],"assignedTo":"g1","assignedAt":"x","claimToken":"tok",)"
            R"("error":{"message":"lease expired","code":"LEASE_EXPIRED","recoverable":true,)"
            R"("occurredAt":"2026-01-01T00:00:05.000Z","attempt":1},"failedAt":"2026-01-01T00:00:05.000Z"})",
    // cancelled with a reason
    kHead + R"("targetAgentType":"claude-code","status":"cancelled","offeredBy":"coordinator",)"
            R"("offeredAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:05.000Z",)"
            R"("attempts":0,"maxAttempts":3,"errors":[],"transitions":[],)"
            R"("cancelledAt":"2026-01-01T00:00:05.000Z","cancelReason":"user-requested"})",
    // written by other software: unknown members, other types, other forms
    R"({"status":"pending","custom":{"a":[1,2]},"id":"x-1","priority":"high","attempts":2.5,)"
    R"("maxAttempts":1e+06,"progress":5.5,"errors":[{"recoverable":false,"message":"m"},7],)"
    R"("error":"text","transitions":{"not":"a list"},"assignedTo":null,"zzz":"z"})",
    R"({"id":"x-2","status":"paused","description":"other"})",
    R"({"id":"x-3","status":"completed"})",
    // A member Weft does not know whose name holds a NUL (found by the fuzzer:
    // the name was cut at the NUL when written back).
    R"({"id":"x-4","status":"pending","a\u0000b":1,"title":"t"})",
};

}  // namespace

TEST_CASE("a stored work item decodes and encodes back byte for byte", "[work_item]") {
  for (const auto& stored : kStored) {
    INFO(stored);
    auto item = WorkItem::decode(stored);
    REQUIRE(item);
    CHECK(item->encode() == stored);
    CHECK(item->toJson().dump() == stored);
    auto again = WorkItem::decode(item->encode());
    REQUIRE(again);
    CHECK(again->encode() == stored);
  }
}

TEST_CASE("a decoded work item has its members typed", "[work_item]") {
  auto item = WorkItem::decode(kStored[3]);
  REQUIRE(item);
  CHECK(item->status == WorkStatus::Assigned);
  CHECK(item->isActive());
  CHECK(item->priority == 7);
  CHECK(item->attempts == 2);
  CHECK(item->assignedTo == "g2");
  REQUIRE(item->errors.size() == 1);
  CHECK(item->errors[0].message == "boom");
  CHECK(item->errors[0].code == std::optional<std::string>("E1"));
  CHECK(item->errors[0].agentGuid == std::optional<std::string>("g1"));
  CHECK(item->errors[0].verbatim.isNull());
  CHECK(item->has(WorkField::Error));
  CHECK_FALSE(item->has(WorkField::Progress));

  auto other = WorkItem::decode(kStored[7]);
  REQUIRE(other);
  CHECK_FALSE(other->has(WorkField::Priority));  // "high": kept verbatim
  CHECK(other->priority == 5);
  CHECK_FALSE(other->has(WorkField::Attempts));
  CHECK(other->extra.get("custom").get("a").size() == 2);
  CHECK(other->errors.size() == 2);
  CHECK_FALSE(other->errors[0].verbatim.isNull());

  auto paused = WorkItem::decode(kStored[8]);
  REQUIRE(paused);
  CHECK(paused->status == WorkStatus::Unknown);
  CHECK(paused->statusText() == "paused");
  CHECK_FALSE(paused->isActive());
  CHECK_FALSE(paused->isTerminal());
}

TEST_CASE("work item members set and erased keep the stored order rules", "[work_item]") {
  auto item = WorkItem::decode(R"({"id":"a","status":"pending","x":1,"attempts":0})");
  REQUIRE(item);
  item->set(WorkField::AssignedTo, std::string("g"));
  item->set(WorkField::Attempts, int64_t{1});  // present: stays in place
  item->status = WorkStatus::Assigned;
  CHECK(item->encode() == R"({"id":"a","status":"assigned","x":1,"attempts":1,"assignedTo":"g"})");
  item->erase(WorkField::Attempts);
  item->set(WorkField::Attempts, int64_t{2});  // re-added: goes last
  CHECK(item->encode() == R"({"id":"a","status":"assigned","x":1,"assignedTo":"g","attempts":2})");

  auto odd = WorkItem::decode(R"({"id":"a","status":"pending","priority":"high"})");
  REQUIRE(odd);
  odd->set(WorkField::Priority, int64_t{3});
  CHECK(odd->encode() == R"({"id":"a","status":"pending","priority":3})");
  CHECK(odd->extra.asObject().empty());
}

TEST_CASE("values that are not work items do not decode", "[work_item]") {
  for (const char* bad : {"", "not json", "[]", "42", "null", R"({"status":"pending"})",
                          R"({"id":"","status":"pending"})", R"({"id":7,"status":"pending"})",
                          R"({"id":"a"})", R"({"id":"a","status":3})", R"({"id":"a","status":null})",
                          R"({"id":"a","status":"pending")"}) {
    INFO(bad);
    CHECK_FALSE(WorkItem::decode(bad));
  }
}

TEST_CASE("work status text", "[work_item]") {
  for (auto s : {WorkStatus::Pending, WorkStatus::Assigned, WorkStatus::InProgress,
                 WorkStatus::Completed, WorkStatus::Failed, WorkStatus::Cancelled}) {
    CHECK(parseWorkStatus(workStatusText(s)) == s);
  }
  CHECK(std::string(workStatusText(WorkStatus::InProgress)) == "in-progress");
  CHECK_FALSE(parseWorkStatus("In-Progress"));
}

// WorkEntry::read (a restart's replay) builds only the members a work entry
// needs and checks the rest: it must keep what the whole decode keeps and
// reject exactly what it rejects, whatever is stored.
TEST_CASE("the partial read of a stored item agrees with the whole decode", "[work_item]") {
  size_t kept = 0, rejected = 0;
  auto check = [&](const std::string& stored) {
    INFO(stored);
    REQUIRE(test::readAgreesWithDecode(stored));
    (WorkEntry::read(stored) ? kept : rejected) += 1;
  };
  const char* const kMembers[] = {
      "id",        "projectId", "capability",     "boundary",      "requiredAgentType",
      "assignedTo", "status",   "priority",       "attempts",      "offeredAt",
      "updatedAt", "leaseExpiresAt", "nextAttemptAt", "progress", "transitions",
      "errors",    "description", "contextData"};
  const char* const kValues[] = {
      "null", "true", "7", "-3", "2.5", "5.0", "1e300", "99999999999999999999", R"("")",
      R"("text")", R"("in-progress")", R"("2026-01-01T00:00:07.000Z")", "[]", R"([{"seq":9}])",
      R"([1,{"seq":"x"},{"seq":4}])", R"({"seq":4})", R"([[[[[[[[[[]]]]]]]]]])"};
  for (const auto& stored : kStored) {
    check(stored);
    auto parsed = Json::parse(stored, 64);
    REQUIRE(parsed);
    for (const char* member : kMembers) {
      Json without = *parsed;
      without.erase(member);
      check(without.dump());
      for (const char* value : kValues) {
        auto replacement = Json::parse(value, 64);
        REQUIRE(replacement);
        Json changed = *parsed;
        changed.set(member, *replacement);
        check(changed.dump());
        // The same member twice: the last one wins, first or last.
        const std::string twice = std::string("\"") + member + "\":" + value;
        check("{" + twice + "," + stored.substr(1));
        check(stored.substr(0, stored.size() - 1) + "," + twice + "}");
      }
    }
    // Broken anywhere: cut short, or one byte replaced (a quote, an escape,
    // a control character, a byte that is not UTF-8, a bracket).
    for (size_t n = 0; n < stored.size(); ++n) {
      check(stored.substr(0, n));
      for (char c : {'"', '\\', '\x01', '\xff', '{', ']'}) {
        std::string flipped = stored;
        flipped[n] = c;
        check(flipped);
      }
    }
  }
  // Deeper than the decode allows, in a member the read does not build.
  std::string deep = R"({"id":"d","status":"pending","contextData":)";
  for (int i = 0; i < 70; ++i) deep += "[";
  for (int i = 0; i < 70; ++i) deep += "]";
  check(deep + "}");
  CHECK(kept > 1000);
  CHECK(rejected > 1000);
}
