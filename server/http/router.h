// The route table of weftd: method + path template -> handler.
//
// Templates are '/'-separated segments: a literal ("work"), a parameter
// ("{id}", matches one non-empty segment, percent-decoded) or, as the last
// segment only, a catch-all ("{path*}", one or more segments joined with '/').
// When several templates match a path, the most specific wins segment by
// segment from the left: literal > parameter > catch-all. So
// `POST /api/work/claim` is the claim route while `GET /api/work/claim` is
// `GET /api/work/{id}` with id "claim" (docs/api.md §2.0).
//
// Thread-safety: add()/addRaw() only while the server is not yet serving
// (registration happens during start-up, before HTTPServer::start); after
// that the router is read-only and match()/routes() may be called from any
// number of threads.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "http/api_types.h"

#include <Poco/Net/StreamSocket.h>

#include <memory>

namespace weft::http {

// A normal route: gets the parsed request, returns the response. May throw;
// the pipeline turns an exception into 500 InternalError and logs it.
using Handler = std::function<ApiResponse(const ApiRequest&)>;

// How a route takes a connection over after its response (the WebSocket
// upgrade of /api/ws answers 101 and then speaks another protocol). The front
// end writes the response in full, removes the connection from its loop and
// calls adopt() with the socket and any bytes that arrived after the request;
// when the response cannot be written (the peer went away) it calls abandon()
// instead. Exactly one of the two is called, on the front end's I/O thread;
// both must return quickly.
struct Upgrade {
  std::function<void(Poco::Net::StreamSocket socket, std::string buffered)> adopt;
  std::function<void()> abandon;
};

// A route that may take the connection over. Like a Handler it returns the
// response; to take over it sets `upgrade` (then the response should be 101).
// The pipeline has already applied OPTIONS, the body limit and, when the
// route is protected, auth.
using RawHandler =
    std::function<ApiResponse(const ApiRequest&, std::shared_ptr<Upgrade>& upgrade)>;

enum class AuthPolicy {
  Default,   // protected iff Router::protectedByDefault(path)
  Required,  // always behind bearer auth (e.g. /metrics with metrics.requireAuth)
  None,      // never (e.g. /api/ws, which has its own handshake rules)
};

struct RouteOptions {
  // Whether the pipeline parses the body (docs/api.md §1.1). Routes that read no
  // body get {} whatever was sent.
  bool readsBody = false;
  AuthPolicy auth = AuthPolicy::Default;
  // Run on the front end's I/O thread instead of a worker: only for handlers
  // that never block and finish in microseconds (/health), so they answer
  // even when every worker waits on the backend.
  bool inlined = false;
};

struct RouteInfo {
  std::string method;
  std::string pathTemplate;
  RouteOptions options;
  bool raw = false;
};

struct Route {
  RouteInfo info;
  Handler handler;        // set for normal routes
  RawHandler rawHandler;  // set for raw routes

  enum class SegmentKind { Literal, Param, CatchAll };
  struct Segment {
    SegmentKind kind;
    std::string text;  // the literal, or the parameter name
  };
  std::vector<Segment> segments;
};

struct RouteMatch {
  enum class Kind { Found, NoRoute, MethodNotAllowed };
  Kind kind = Kind::NoRoute;
  const Route* route = nullptr;               // when Found
  std::map<std::string, std::string> params;  // when Found, decoded
  std::string allow;  // when MethodNotAllowed: "GET, POST" (the Allow header)
};

class Router {
 public:
  // Registers a route. Throws std::invalid_argument for a malformed template
  // or when the same method is already registered for an equivalent template
  // (same segments, parameters compared by position only): both are bugs that
  // must stop start-up.
  void add(std::string method, std::string pathTemplate, Handler handler,
           RouteOptions options = {});
  void addRaw(std::string method, std::string pathTemplate, RawHandler handler,
              RouteOptions options = {});

  // Matches a normalised path (see normalizePath) for method. Found: the
  // route and its decoded parameters. MethodNotAllowed: some template matches
  // the path but none for this method; `allow` lists the methods that do.
  // NoRoute otherwise.
  RouteMatch match(std::string_view method, std::string_view path) const;

  // Every route in registration order (for the OpenAPI cross-check, logs).
  std::vector<RouteInfo> routes() const;

  // Whether the matched route (or, for no match, the path) needs bearer auth.
  // `path` is the normalised request path.
  static bool requiresAuth(const RouteMatch& match, std::string_view path);

  // docs/api.md §1.6: every path under /api/ except /api/openapi.json, /api/docs
  // and anything under /api/docs/. Decodes the path before deciding, so an
  // encoded spelling is judged like the plain one.
  static bool protectedByDefault(std::string_view path);

  // Removes the query string and fragment, and one trailing '/' (but keeps
  // "/"). The result stays percent-encoded.
  static std::string normalizePath(std::string_view requestTarget);

  // Percent-decodes s. Invalid escapes are kept literally; '+' is kept
  // (it is a space only in query strings).
  static std::string percentDecode(std::string_view s);

 private:
  void addRoute(Route route);

  std::vector<Route> routes_;
};

// Splits a query string ("a=1&b=x%20y") into decoded pairs; '+' is a space.
ApiRequest::Pairs parseQueryString(std::string_view query);

}  // namespace weft::http
