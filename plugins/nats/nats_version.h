// Which nats-server the plugin talks to, and whether that server's
// compare-and-set is exclusive on replicated streams.
//
// nats-server before 2.9.21 checks a KV update's per-subject expectation
// (Nats-Expected-Last-Subject-Sequence) before the Raft proposal, outside it:
// on a stream with several replicas, concurrent writers with the same
// expectation can all pass (upstream issue #4320). Debian 12 ships 2.9.10, so
// the plugin guards compare-and-set on replicated buckets itself unless the
// server is known to be fixed (nats_bucket.h).
//
// nats.c 3.4.1 does not expose the server's version, so it is read from the
// INFO line every NATS server sends first on a new TCP connection, before any
// authentication.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace weft::nats_plugin {

struct ServerVersion {
  int major = 0, minor = 0, patch = 0;
  std::string text;  // as the server reported it, e.g. "2.9.10"
};

// "2.9.10", "v2.10.4-beta.1" -> the three numbers; nullopt when not a version.
std::optional<ServerVersion> parseServerVersion(const std::string& text);

// The "version" of a server's INFO line (`INFO {...}`); nullopt when absent.
std::optional<ServerVersion> versionFromInfoLine(const std::string& line);

// True when the server enforces per-subject compare-and-set inside the Raft
// proposal (2.9.21 and later), so the native KV update is exclusive on
// replicated streams too.
bool hasReplicatedCasFix(const ServerVersion& version);

// Connects to host:port, reads the INFO line and returns the version; nullopt
// when the server cannot be reached or says nothing usable within timeoutMs.
std::optional<ServerVersion> probeServerVersion(const std::string& host, int port,
                                                int64_t timeoutMs);

// The host and port of a nats://host:port URL as nats.c reports it.
bool splitHostPort(const std::string& url, std::string* host, int* port);

}  // namespace weft::nats_plugin
