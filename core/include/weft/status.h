// Status and Result: the error model shared by the core, the services and the
// storage plugins. No exception ever crosses a plugin boundary; every fallible
// call returns one of these instead.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace weft {

enum class Code {
  Ok = 0,
  NotFound,         // the key (or resource) does not exist
  AlreadyExists,    // create() on a key that exists
  Conflict,         // compare-and-set lost: the revision moved
  Unavailable,      // the backend is disconnected or refused the call
  Timeout,          // the deadline passed before the backend answered
  InvalidArgument,  // the caller passed something the backend cannot store
  Internal,         // anything else; a bug or an unexpected backend reply
  // Domain codes used by the core services only (never by a backend):
  PermissionDenied,   // the operation is switched off by configuration
  ResourceExhausted,  // a concurrency limit is reached
  Unimplemented,      // the loaded backend lacks a capability
  Unprocessable,      // well-formed, but contradicts an earlier request (an
                      // idempotency key reused with another body)
};

inline const char* codeName(Code code) {
  switch (code) {
    case Code::Ok: return "Ok";
    case Code::NotFound: return "NotFound";
    case Code::AlreadyExists: return "AlreadyExists";
    case Code::Conflict: return "Conflict";
    case Code::Unavailable: return "Unavailable";
    case Code::Timeout: return "Timeout";
    case Code::InvalidArgument: return "InvalidArgument";
    case Code::Internal: return "Internal";
    case Code::PermissionDenied: return "PermissionDenied";
    case Code::ResourceExhausted: return "ResourceExhausted";
    case Code::Unimplemented: return "Unimplemented";
    case Code::Unprocessable: return "Unprocessable";
  }
  return "Unknown";
}

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  static Status notFound(std::string m = "not found") { return {Code::NotFound, std::move(m)}; }
  static Status alreadyExists(std::string m = "already exists") {
    return {Code::AlreadyExists, std::move(m)};
  }
  static Status conflict(std::string m = "revision mismatch") {
    return {Code::Conflict, std::move(m)};
  }
  static Status unavailable(std::string m) { return {Code::Unavailable, std::move(m)}; }
  static Status timeout(std::string m = "deadline exceeded") {
    return {Code::Timeout, std::move(m)};
  }
  static Status invalidArgument(std::string m) { return {Code::InvalidArgument, std::move(m)}; }
  static Status internal(std::string m) { return {Code::Internal, std::move(m)}; }

  bool isOk() const { return code_ == Code::Ok; }
  explicit operator bool() const { return isOk(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // True for the failures a client should retry later (HTTP 503).
  bool isOutage() const { return code_ == Code::Unavailable || code_ == Code::Timeout; }
  std::string toString() const {
    return message_.empty() ? codeName(code_) : std::string(codeName(code_)) + ": " + message_;
  }

 private:
  Code code_ = Code::Ok;
  std::string message_;
};

// A value or a non-Ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.isOk() && "a Result built from a Status must carry an error");
  }

  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status& status() const { return status_; }
  Code code() const { return status_.code(); }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace weft
