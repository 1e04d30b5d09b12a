#include "weft/target_record.h"

#include <array>

namespace weft {

namespace {

// Indexed by the enums; the last entry is the Unknown text.
constexpr std::array<const char*, 5> kStatusTexts = {"available", "in-use", "disabled", "error",
                                                     "unknown"};
constexpr std::array<const char*, 3> kHealthTexts = {"healthy", "unhealthy", "unknown"};

// The index of text among the first `known` texts, or nullopt.
template <size_t N>
std::optional<size_t> indexOf(const std::array<const char*, N>& texts, size_t known,
                              std::string_view text) {
  for (size_t i = 0; i < known; ++i) {
    if (text == texts[i]) return i;
  }
  return std::nullopt;
}

}  // namespace

const char* targetStatusText(TargetStatus status) {
  return kStatusTexts[static_cast<size_t>(status)];
}

std::optional<TargetStatus> parseTargetStatus(std::string_view text) {
  auto i = indexOf(kStatusTexts, kStatusTexts.size() - 1, text);  // "unknown" is not stored
  if (!i) return std::nullopt;
  return static_cast<TargetStatus>(*i);
}

const char* targetHealthText(TargetHealth health) {
  return kHealthTexts[static_cast<size_t>(health)];
}

std::optional<TargetHealth> parseTargetHealth(std::string_view text) {
  auto i = indexOf(kHealthTexts, kHealthTexts.size(), text);
  if (!i) return std::nullopt;
  return static_cast<TargetHealth>(*i);
}

}  // namespace weft
