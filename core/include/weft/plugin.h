// The storage plugin ABI. A plugin is a shared library named
// weft-kv-<name>.so that exports exactly one C symbol, WEFT_KV_PLUGIN_ENTRY,
// returning a static descriptor. The host checks abiVersion before touching
// anything else in the descriptor.
//
// The KvStore the plugin creates is a C++ object. Host and plugins are built
// together by one CMake project with one compiler; WEFT_KV_ABI_VERSION is
// bumped on any change to kv.h, status.h, log_level.h or this file, and the descriptor
// also carries a fingerprint of those three headers, so a stale plugin is
// refused at load time instead of crashing later, even if a bump was
// forgotten. plugin_sdk.h writes the descriptor for a plugin. Rules for plugins:
//  * no exception escapes create(), destroy() or any KvStore/KvBucket method,
//    nor any thread the plugin owns;
//  * the plugin allocates and frees its own objects: the host releases a store
//    only through destroy() and never deletes it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "weft/kv.h"
#include "weft/log_level.h"

#define WEFT_KV_ABI_VERSION 7u

// A hash of kv.h, status.h, log_level.h and this file, computed by CMake at configure
// time (the top-level CMakeLists) and compared by the loader.
#ifndef WEFT_KV_ABI_FINGERPRINT
#error "WEFT_KV_ABI_FINGERPRINT is not defined: build with Weft's CMake project"
#endif
#define WEFT_KV_PLUGIN_ENTRY "weft_kv_plugin_entry"

namespace weft {

// What the host gives a plugin when it creates a store.
struct PluginContext {
  // The kv.* keys and the plugin's own keys (those its descriptor declares,
  // e.g. "nats.url"), after defaults, file, environment and flags were
  // merged. Nothing else: no other backend's settings, no HTTP tokens.
  std::map<std::string, std::string> settings;
  // Where the plugin logs, connection state changes in particular. Safe to
  // call from any thread.
  std::function<void(LogLevel, const std::string&)> log;
};

}  // namespace weft

extern "C" {

// One setting a plugin reads. The host lists it in `weftd --help`, applies
// its default, reads it from the environment (WEFT_<KEY>, and envAlias when
// set) and never prints a secret one. Values reach the plugin as text; the
// plugin validates them in create() and names the key in its error.
struct WeftKvSettingSpec {
  const char* key;           // "<plugin name>.<name>", e.g. "nats.url"
  const char* defaultValue;  // never null; "" for none
  const char* envAlias;      // an older environment name (e.g. "NATS_URL"), or null
  const char* help;          // one line for --help
  int secret;                // 1: a credential, redacted wherever the host shows it
};

struct WeftKvPluginDescriptor {
  uint32_t abiVersion;  // must equal WEFT_KV_ABI_VERSION
  const char* name;     // the backend name, e.g. "nats"
  // Creates a store. On failure returns nullptr and writes a readable reason
  // to *error (a configuration problem such as a bad URL; an unreachable
  // server is not a failure: the store starts disconnected and reconnects).
  weft::KvStore* (*create)(const weft::PluginContext* context, std::string* error);
  void (*destroy)(weft::KvStore* store);
  // WEFT_KV_ABI_FINGERPRINT of the plugin's build; read only after the
  // version matched.
  const char* abiFingerprint;
  // The settings the plugin reads besides kv.*; each key starts with
  // "<name>.".
  const WeftKvSettingSpec* settings;
  uint32_t settingCount;
};

typedef const WeftKvPluginDescriptor* (*WeftKvPluginEntryFn)(void);
}
