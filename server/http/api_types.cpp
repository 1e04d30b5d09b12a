#include "http/api_types.h"
#include "http/errors.h"

#include <cctype>

namespace weft::http {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> ApiRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (equalsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

std::optional<std::string> ApiResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (equalsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

ApiResponse ApiResponse::jsonList(int status, JsonListStream list) {
  constexpr size_t kPieceBytes = 32 * 1024;
  struct State {
    JsonListStream list;
    size_t next = 0;
    bool headDone = false;
    bool any = false;  // an element was written
  };
  auto state = std::make_shared<State>();
  state->list = std::move(list);
  ApiResponse r;
  r.status = status;
  r.kind = BodyKind::Stream;
  r.contentType = kJsonContentType;
  r.stream = [state](std::string& out) {
    const size_t start = out.size();
    if (!state->headDone) {
      out += state->list.head;
      state->headDone = true;
    }
    while (state->next < state->list.count && out.size() - start < kPieceBytes) {
      state->list.appendElement(state->next++, out, state->any);
    }
    if (state->next < state->list.count) return false;
    out += state->list.tail;
    return true;
  };
  return r;
}

PendingResponse::~PendingResponse() {
  // Nobody completed it: answer rather than leave the client waiting.
  if (!completed_ && sink_) {
    try {
      sink_(internalErrorResponse());
    } catch (...) {
    }
  }
}

void PendingResponse::complete(ApiResponse response) {
  Sink sink;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_) return;
    completed_ = true;
    if (!sink_) {
      early_ = std::move(response);
      return;
    }
    sink = std::move(sink_);
  }
  sink(std::move(response));
}

void PendingResponse::onClientGone(std::function<void()> callback) {
  std::lock_guard<std::mutex> lock(mu_);
  onClientGone_ = std::move(callback);
}

void PendingResponse::clientGone() {
  std::function<void()> callback;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_) return;
    callback = std::move(onClientGone_);
    onClientGone_ = nullptr;
  }
  if (callback) callback();
}

void PendingResponse::attach(Sink sink) {
  std::optional<ApiResponse> early;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!early_) {
      sink_ = std::move(sink);
      return;
    }
    early.swap(early_);
  }
  sink(std::move(*early));
}

}  // namespace weft::http
