// AWS wiring and commands: `postline queues create`, `postline aws policy`,
// and the permission probes of `postline health`.
#pragma once

#include <nlohmann/json.hpp>

#include "app/context.h"
#include "postline/aws.h"

namespace postline::app {

// AwsOptions from the settings plus the process environment (HOME, shared
// file paths, container and IMDS variables).
aws::AwsOptions AwsOptionsFromSettings(const Settings& settings);

// A signed client for `service` ("sqs", "ses", "s3") with the credentials
// chain. Errors: kInvalidInput "missing_region" (AWS_REGION).
Result<std::shared_ptr<aws::AwsClient>> NewAwsClient(const Settings& settings,
                                                     std::string_view service);

// Registers `postline queues create` (under the existing `queues` command;
// REQUIRES: `queues` is registered).
Command RegisterQueuesCreateCommand(CLI::App& app);
// Registers `postline aws policy`.
Command RegisterAwsPolicyCommand(CLI::App& app);

// For `postline health` with QUEUE_PROVIDER=sqs or EMAIL_PROVIDER=ses: probes
// each IAM permission and lists the missing ones. Sets *healthy = false when
// any is missing.
nlohmann::json ProbeAwsPermissions(const Context& ctx, bool* healthy);

}  // namespace postline::app
