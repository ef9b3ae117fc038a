// Shared inside the aws module (not a public header).
#pragma once

#include <string>
#include <vector>

#include "postline/aws.h"

namespace postline::aws {

// One unsigned HTTP exchange on a fresh handle (credential endpoints).
// Errors: kTransient "http_failed" with libcurl's message.
Result<HttpResponse> PlainHttp(const std::string& method, const std::string& url,
                               const std::vector<std::string>& headers, long timeout_ms);

// Parses an AWS error response (any protocol we speak).
ServiceError ParseServiceError(const HttpResponse& response);

// Initialises libcurl's global state once per process (thread-safe).
void EnsureCurlGlobalInit();

}  // namespace postline::aws
