// The process-wide logger: one line per record on stderr, either a JSON object
// (the default: `time`, `level`, `msg`, then the extra fields in the order
// given) or a human-readable text line.
//
//   weft::log::info("listening", {{"host", host}, {"port", port}});
//   weft::log::warn("backend disconnected", {{"backend", name}, {"reason", why}});
//
// Thread-safety: every function may be called from any thread at any time,
// including threads owned by plugins; records from different threads never
// interleave within a line. The level and the format are global and may be
// changed while other threads log (a record already being written keeps the
// settings it started with).
//
// Secrets: the logger writes what it is given. Callers must never pass a
// token or an Authorization header, and must pass URLs through redactUrl().
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "weft/json.h"
#include "weft/log_level.h"

namespace weft::log {

enum class Format { Json, Text };

// Extra fields of a record, in output order. Values are any Json, so
// {{"port", 3000}, {"backend", "nats"}} works through Json's converting
// constructors.
using Fields = Json::Object;

// Records below this level are dropped cheaply. Default: Info.
void setLevel(LogLevel level);
LogLevel level();
bool enabled(LogLevel level);

// Default: Format::Json.
void setFormat(Format format);
Format format();

// "trace", "debug", "info", "warn" (or "warning"), "error", case-insensitive;
// nullopt for anything else.
std::optional<LogLevel> parseLevel(std::string_view name);
// "json" or "text", case-insensitive; nullopt for anything else.
std::optional<Format> parseFormat(std::string_view name);
const char* levelName(LogLevel level);

// Writes one record when level is enabled. Never throws: a record that
// cannot be formatted or written is dropped.
void write(LogLevel level, std::string_view msg, const Fields& fields = {});

inline void trace(std::string_view msg, const Fields& fields = {}) {
  write(LogLevel::Trace, msg, fields);
}
inline void debug(std::string_view msg, const Fields& fields = {}) {
  write(LogLevel::Debug, msg, fields);
}
inline void info(std::string_view msg, const Fields& fields = {}) {
  write(LogLevel::Info, msg, fields);
}
inline void warn(std::string_view msg, const Fields& fields = {}) {
  write(LogLevel::Warn, msg, fields);
}
inline void error(std::string_view msg, const Fields& fields = {}) {
  write(LogLevel::Error, msg, fields);
}

// Replaces where records go (default: stderr). The sink receives each
// complete line including its trailing '\n', one call per record, never
// concurrently. Pass nullptr to restore stderr. Meant for tests that assert
// on log output.
void setSink(std::function<void(const std::string& line)> sink);

// Masks the credentials of every URL in text: `scheme://user:pass@host/x`
// becomes `scheme://***@host/x`. Handles comma-separated URL lists (as in
// nats.url) and URLs without a scheme (`user:pass@host:port`). Text without
// credentials is returned unchanged.
std::string redactUrl(const std::string& text);

}  // namespace weft::log
