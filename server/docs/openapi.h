// The OpenAPI 3.0 document of the REST contract (docs/api.md), served at
// GET /api/openapi.json. Weft never uses it to validate anything.
//
// Where each part comes from:
//  * operations: contractOperations(), a hand-written table of every method
//    and path of docs/api.md §2 (tag, summary, parameters, body, responses);
//  * schemas, shared responses and headers, security schemes:
//    server/docs/openapi_components.json, embedded at build time;
//  * derived, so they cannot drift: path parameters (from the template),
//    security and 401 (from Router::protectedByDefault, the rule the request
//    pipeline applies), 413 for operations with a body, 500/503 for
//    operations that use storage;
//  * x-weft-status: a route the router serves but the table lacks still
//    appears, marked `undocumented` (the OpenAPI test fails on those, and on
//    an operation of the table that the router does not serve).
#pragma once

#include <string>
#include <vector>

#include "http/router.h"
#include "weft/json.h"

namespace weft::docs {

struct ParamDoc {
  std::string name;
  std::string in;  // "query", "path" or "header"
  std::string description;
  Json schema;
  bool required = false;
  bool deprecated = false;
};

struct ResponseDoc {
  int status = 200;
  std::string description;
  // One of: a schema name in components/schemas (JSON body), an explicit
  // content type with a schema, or neither (no body).
  std::string schemaRef;
  std::string contentType;
  Json schema;
  // Header name -> components/headers name.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct OperationDoc {
  std::string method;  // upper case, as registered on the router
  std::string path;    // the route template, e.g. "/api/work/{id}"
  std::string operationId;
  std::string tag;
  std::string summary;
  std::string description;
  std::vector<ParamDoc> params;  // query and header parameters, and path parameter texts
  std::string bodySchema;        // components/schemas name; empty = reads no body
  bool bodyRequired = false;
  std::vector<ResponseDoc> responses;  // success and operation-specific errors
};

// Every operation of docs/api.md §2, in document order.
const std::vector<OperationDoc>& contractOperations();

// The document for a server whose router serves `routes`. Throws
// std::runtime_error when the embedded components do not parse (a build
// defect, caught by the tests).
Json buildOpenApi(const std::vector<http::RouteInfo>& routes);

}  // namespace weft::docs
