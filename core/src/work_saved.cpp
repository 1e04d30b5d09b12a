// The work view's saved copy: a restart with a million stored items loads
// the entries from a local file and reads only the changes made since it
// was written, instead of reading and parsing every stored value
// (docs/architecture.md, "Restart: a saved view").
#include "weft/log.h"
#include "weft/work_queue.h"

namespace weft {

namespace {
void putOptional(ByteSink& out, const std::optional<int64_t>& v) {
  out.u8(v ? 1 : 0);
  out.i64(v.value_or(0));
}

bool getOptional(ByteSource& in, std::optional<int64_t>* v) {
  const uint8_t has = in.u8();
  const int64_t value = in.i64();
  if (has > 1) return false;
  if (has) *v = value;
  return true;
}
}  // namespace

void WorkQueue::encodeSaved(const std::string& key, const WorkEntry& e, ByteSink& out) {
  putKeyedId(out, key, e.id);  // the key, unless a stored value says otherwise
  out.str(e.projectId);
  out.str(e.capability);
  out.str(e.boundary);
  out.str(e.requiredAgentType);
  out.str(e.assignedTo);
  out.str(e.unknownStatus);
  out.u8(static_cast<uint8_t>(e.status));
  out.i64(e.priority);
  out.i64(e.attempts);
  out.i64(e.offeredAtMs);
  out.i64(e.updatedAtMs);
  out.i64(e.dueAtMs);
  putOptional(out, e.leaseExpiresAtMs);
  putOptional(out, e.progress);
  out.i64(e.lastTransitionSeq);
  out.u64(e.errorCount);
}

std::shared_ptr<const WorkEntry> WorkQueue::decodeSaved(const std::string& key, ByteSource& in) {
  auto e = std::make_shared<WorkEntry>();
  if (!getKeyedId(in, key, &e->id)) return nullptr;
  e->projectId = in.str();
  e->capability = in.str();
  e->boundary = in.str();
  e->requiredAgentType = in.str();
  e->assignedTo = in.str();
  e->unknownStatus = in.str();
  const uint8_t status = in.u8();
  if (status > static_cast<uint8_t>(WorkStatus::Unknown)) return nullptr;
  e->status = static_cast<WorkStatus>(status);
  e->priority = in.i64();
  e->attempts = in.i64();
  e->offeredAtMs = in.i64();
  e->updatedAtMs = in.i64();
  e->dueAtMs = in.i64();
  if (!getOptional(in, &e->leaseExpiresAtMs) || !getOptional(in, &e->progress)) return nullptr;
  e->lastTransitionSeq = in.i64();
  e->errorCount = static_cast<size_t>(in.u64());
  if (!in.ok()) return nullptr;
  return e;
}

}  // namespace weft
