#include "weft/work_transitions.h"

namespace weft {

namespace {

const Json::Array* logOf(const Json& log) { return log.isArray() ? &log.asArray() : nullptr; }

}  // namespace

void appendTransition(WorkItem& item, const char* event, const std::string& atIso,
                      Json::Object fields) {
  const int64_t seq = lastTransitionSeq(item.transitions) + 1;
  Json::Object entry;
  entry.reserve(fields.size() + 3);
  entry.emplace_back("seq", Json(seq));
  entry.emplace_back("event", Json(event));
  entry.emplace_back("at", Json(atIso));
  for (auto& f : fields) entry.push_back(std::move(f));

  if (!item.has(WorkField::Transitions) || !item.transitions.isArray()) {
    item.transitions = Json::array();
  }
  item.set(WorkField::Transitions);
  Json::Array& entries = item.transitions.asArray();
  entries.push_back(Json(std::move(entry)));
  if (entries.size() > kMaxTransitions) {
    entries.erase(entries.begin(),
                  entries.begin() + static_cast<std::ptrdiff_t>(entries.size() - kMaxTransitions));
  }
}

bool hasTransitions(const Json& transitions) {
  const Json::Array* log = logOf(transitions);
  return log && !log->empty();
}

int64_t lastTransitionSeq(const Json& transitions) {
  const Json::Array* log = logOf(transitions);
  if (!log || log->empty()) return 0;
  return log->back().getInt("seq", 0);
}

std::vector<const Json*> unseenTransitions(std::optional<int64_t> seenSeq, const Json& after) {
  std::vector<const Json*> out;
  const Json::Array* log = logOf(after);
  if (!log) return out;
  size_t from = 0;
  if (seenSeq) {
    const int64_t seen = *seenSeq;
    while (from < log->size() && (*log)[from].getInt("seq", 0) <= seen) ++from;
  } else {
    for (size_t i = log->size(); i-- > 0;) {
      if ((*log)[i].getBool("recreated", false)) {
        from = i;
        break;
      }
    }
  }
  for (size_t i = from; i < log->size(); ++i) {
    if ((*log)[i].isObject()) out.push_back(&(*log)[i]);
  }
  return out;
}

}  // namespace weft
