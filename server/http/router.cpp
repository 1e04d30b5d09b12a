#include "http/router.h"

#include <algorithm>
#include <stdexcept>

namespace weft::http {
namespace {

// Raw (still encoded) segments of a normalised path; "/" has none.
std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path == "/") return out;
  size_t pos = path.front() == '/' ? 1 : 0;
  while (true) {
    const size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) {
      out.push_back(path.substr(pos));
      break;
    }
    out.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view s, bool plusIsSpace) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hexValue(s[i + 1]);
      const int lo = hexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plusIsSpace && c == '+') ? ' ' : c;
  }
  return out;
}

// Rank of a segment kind for specificity: a higher rank wins.
int rank(Route::SegmentKind kind) {
  switch (kind) {
    case Route::SegmentKind::Literal:
      return 2;
    case Route::SegmentKind::Param:
      return 1;
    case Route::SegmentKind::CatchAll:
      return 0;
  }
  return 0;
}

// Matches decoded segments against a route. On success fills params and the
// specificity score (one rank per path segment).
bool matchRoute(const Route& route, const std::vector<std::string>& segments,
                std::map<std::string, std::string>& params, std::vector<int>& score) {
  params.clear();
  score.clear();
  const auto& rs = route.segments;
  const bool catchAll = !rs.empty() && rs.back().kind == Route::SegmentKind::CatchAll;
  if (catchAll ? segments.size() < rs.size() : segments.size() != rs.size()) return false;
  for (size_t i = 0; i < rs.size(); ++i) {
    const Route::Segment& seg = rs[i];
    switch (seg.kind) {
      case Route::SegmentKind::Literal:
        if (segments[i] != seg.text) return false;
        score.push_back(rank(seg.kind));
        break;
      case Route::SegmentKind::Param:
        // An empty segment ("/api/work//cancel") names nothing.
        if (segments[i].empty()) return false;
        params[seg.text] = segments[i];
        score.push_back(rank(seg.kind));
        break;
      case Route::SegmentKind::CatchAll: {
        std::string rest;
        for (size_t j = i; j < segments.size(); ++j) {
          if (j > i) rest += '/';
          rest += segments[j];
          score.push_back(rank(seg.kind));
        }
        if (rest.empty()) return false;
        params[seg.text] = std::move(rest);
        break;
      }
    }
  }
  return true;
}

// The order in which Allow lists methods; unknown methods follow, sorted.
int methodOrder(const std::string& m) {
  static const char* const kOrder[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
  for (int i = 0; i < 6; ++i) {
    if (m == kOrder[i]) return i;
  }
  return 6;
}

bool sameShape(const Route& a, const Route& b) {
  if (a.segments.size() != b.segments.size()) return false;
  for (size_t i = 0; i < a.segments.size(); ++i) {
    if (a.segments[i].kind != b.segments[i].kind) return false;
    if (a.segments[i].kind == Route::SegmentKind::Literal &&
        a.segments[i].text != b.segments[i].text) {
      return false;
    }
  }
  return true;
}

Route parseTemplate(std::string method, std::string pathTemplate) {
  if (method.empty()) throw std::invalid_argument("route method is empty");
  if (pathTemplate.empty() || pathTemplate.front() != '/') {
    throw std::invalid_argument("route template must start with '/': " + pathTemplate);
  }
  if (pathTemplate.size() > 1 && pathTemplate.back() == '/') {
    throw std::invalid_argument("route template must not end with '/': " + pathTemplate);
  }
  Route route;
  const auto raw = splitPath(pathTemplate);
  for (size_t i = 0; i < raw.size(); ++i) {
    std::string_view s = raw[i];
    if (s.empty()) throw std::invalid_argument("empty segment in route template: " + pathTemplate);
    if (s.front() == '{') {
      if (s.back() != '}' || s.size() < 3) {
        throw std::invalid_argument("malformed parameter in route template: " + pathTemplate);
      }
      std::string_view name = s.substr(1, s.size() - 2);
      Route::SegmentKind kind = Route::SegmentKind::Param;
      if (name.back() == '*') {
        if (i + 1 != raw.size() || name.size() < 2) {
          throw std::invalid_argument("a catch-all must be the last segment: " + pathTemplate);
        }
        name.remove_suffix(1);
        kind = Route::SegmentKind::CatchAll;
      }
      for (const auto& prev : route.segments) {
        if (prev.kind != Route::SegmentKind::Literal && prev.text == name) {
          throw std::invalid_argument("duplicate parameter name in route template: " +
                                      pathTemplate);
        }
      }
      route.segments.push_back({kind, std::string(name)});
    } else {
      if (s.find_first_of("{}") != std::string_view::npos) {
        throw std::invalid_argument("malformed literal in route template: " + pathTemplate);
      }
      // Literals are compared with decoded request segments.
      route.segments.push_back({Route::SegmentKind::Literal, decode(s, false)});
    }
  }
  route.info.method = std::move(method);
  route.info.pathTemplate = std::move(pathTemplate);
  return route;
}

}  // namespace

void Router::add(std::string method, std::string pathTemplate, Handler handler,
                 RouteOptions options) {
  if (!handler) throw std::invalid_argument("route handler is empty: " + pathTemplate);
  Route route = parseTemplate(std::move(method), std::move(pathTemplate));
  route.info.options = options;
  route.handler = std::move(handler);
  addRoute(std::move(route));
}

void Router::addRaw(std::string method, std::string pathTemplate, RawHandler handler,
                    RouteOptions options) {
  if (!handler) throw std::invalid_argument("route handler is empty: " + pathTemplate);
  Route route = parseTemplate(std::move(method), std::move(pathTemplate));
  route.info.options = options;
  route.info.raw = true;
  route.rawHandler = std::move(handler);
  addRoute(std::move(route));
}

void Router::addRoute(Route route) {
  for (const Route& existing : routes_) {
    if (existing.info.method == route.info.method && sameShape(existing, route)) {
      throw std::invalid_argument("route " + route.info.method + " " + route.info.pathTemplate +
                                  " conflicts with " + existing.info.pathTemplate);
    }
  }
  routes_.push_back(std::move(route));
}

RouteMatch Router::match(std::string_view method, std::string_view path) const {
  std::vector<std::string> segments;
  for (std::string_view raw : splitPath(path)) segments.push_back(decode(raw, false));

  RouteMatch result;
  std::vector<int> bestScore;
  std::vector<std::string> otherMethods;
  std::map<std::string, std::string> params;
  std::vector<int> score;
  for (const Route& route : routes_) {
    if (!matchRoute(route, segments, params, score)) continue;
    if (route.info.method != method) {
      if (std::find(otherMethods.begin(), otherMethods.end(), route.info.method) ==
          otherMethods.end()) {
        otherMethods.push_back(route.info.method);
      }
      continue;
    }
    // Scores of different lengths only arise with catch-alls; lexicographic
    // comparison still prefers the more literal prefix.
    if (result.route == nullptr || score > bestScore) {
      result.kind = RouteMatch::Kind::Found;
      result.route = &route;
      result.params = params;
      bestScore = score;
    }
  }
  if (result.route != nullptr) return result;
  if (otherMethods.empty()) {
    result.kind = RouteMatch::Kind::NoRoute;
    return result;
  }
  std::sort(otherMethods.begin(), otherMethods.end(),
            [](const std::string& a, const std::string& b) {
              const int oa = methodOrder(a), ob = methodOrder(b);
              return oa != ob ? oa < ob : a < b;
            });
  result.kind = RouteMatch::Kind::MethodNotAllowed;
  for (const std::string& m : otherMethods) {
    if (!result.allow.empty()) result.allow += ", ";
    result.allow += m;
  }
  return result;
}

std::vector<RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const Route& r : routes_) out.push_back(r.info);
  return out;
}

bool Router::requiresAuth(const RouteMatch& match, std::string_view path) {
  if (match.kind == RouteMatch::Kind::Found) {
    switch (match.route->info.options.auth) {
      case AuthPolicy::Required:
        return true;
      case AuthPolicy::None:
        return false;
      case AuthPolicy::Default:
        break;
    }
  }
  return protectedByDefault(path);
}

bool Router::protectedByDefault(std::string_view path) {
  const std::string p = decode(path, false);
  // "/api" itself counts as under /api/: "/api/" normalises to it.
  if (p != "/api" && p.compare(0, 5, "/api/") != 0) return false;
  if (p == "/api/openapi.json" || p == "/api/docs") return false;
  if (p.compare(0, 10, "/api/docs/") == 0) return false;
  return true;
}

std::string Router::normalizePath(std::string_view target) {
  // Absolute-form targets ("http://host/path") are legal in HTTP/1.1.
  const size_t scheme = target.find("://");
  if (scheme != std::string_view::npos && target.find_first_of("/?#") > scheme) {
    const size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  const size_t end = target.find_first_of("?#");
  std::string path(target.substr(0, end));
  if (path.empty()) path = "/";
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string Router::percentDecode(std::string_view s) {
  return decode(s, false);
}

ApiRequest::Pairs parseQueryString(std::string_view query) {
  ApiRequest::Pairs out;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    const std::string_view part = query.substr(pos, amp - pos);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(decode(part, true), std::string());
      } else {
        out.emplace_back(decode(part.substr(0, eq), true), decode(part.substr(eq + 1), true));
      }
    }
    pos = amp + 1;
  }
  return out;
}

}  // namespace weft::http
