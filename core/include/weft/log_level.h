// The log levels, shared by the host's logger (log.h) and the plugin ABI
// (plugin.h: a plugin logs through PluginContext::log). Part of the ABI, so
// it is hashed into the plugin fingerprint with kv.h, status.h and plugin.h
// (the top-level CMakeLists).
#pragma once

namespace weft {

enum class LogLevel { Trace, Debug, Info, Warn, Error };

}  // namespace weft
