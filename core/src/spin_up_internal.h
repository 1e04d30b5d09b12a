// Internals of the spin-up mechanisms shared by their sources
// (spin_up_mechanisms.cpp, spin_up_config.cpp): defaults, outcome builders and
// small text helpers. Not a public interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weft/json.h"
#include "weft/spin_up_mechanisms.h"
#include "weft/status.h"

namespace weft::spinup::detail {

inline constexpr int64_t kDefaultSshConnectMs = 30000;
inline constexpr int64_t kDefaultWebhookTimeoutMs = 30000;
inline constexpr int64_t kGithubCallTimeoutMs = 30000;
inline constexpr int64_t kDefaultGithubStartMs = 5000;

bool isNonBlankString(const Json& v);

std::string trim(const std::string& s);

// A positive integer setting, else fallback.
int64_t positiveInt(const Json& cfg, const char* key, int64_t fallback);

// The first line of a process's stderr, short enough for lastError.
std::string firstLine(const std::string& text);

std::string exitDescription(const ProcessOutcome& p);

std::string jsonEscaped(const std::string& value);

// Percent-encodes one URL path segment (RFC 3986 unreserved kept).
std::string encodeSegment(const std::string& s);

bool validHeaderText(const std::string& s);

// Whether the timeout that fired was the mechanism's own (a failure with its
// message) or the operation's budget (the operation times out).
MechanismOutcome timeoutOutcome(int64_t ownMs, int64_t budgetMs, const std::string& what);

MechanismOutcome failure(std::string error, Json mechanismResult = Json());

MechanismOutcome success(Json mechanismResult);

MechanismOutcome cancelledOutcome();

bool validDestinationPart(const std::string& s);

// The leading part of every ssh command line: [-p port] [-i key] and the
// options, then user@host. Order as in §4.5 (the probe of §4.4 lists the
// options first; ssh does not care).
Result<std::vector<std::string>> sshPrefix(const Json& ssh, const std::string& sshPath,
                                           int64_t connectSeconds);

// Sleeps up to ms, returning early (false) when the token fires.
bool sleepUnlessCancelled(int64_t ms, const CancelToken& cancel);

}  // namespace weft::spinup::detail
