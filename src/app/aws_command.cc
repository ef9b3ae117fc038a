#include "app/aws_command.h"

#include <fmt/format.h>

#include <cstdlib>
#include <iostream>

#include "postline/ses.h"
#include "postline/sqs.h"

namespace postline::app {
namespace {

using nlohmann::json;

struct CreateOptions {
  int visibility_timeout = 300;
  int retention = 345600;
  int delay = 0;
  int maximum_message_size = 262144;
  int wait = 0;
  int max_receive_count = 0;  // 0: POSTLINE_MAX_RECEIVE_COUNT
  bool sse = false;
};

// The configured queue names: from SQS_*_QUEUE_URL when set, else the guide's.
std::pair<std::string, std::string> QueueNames(const Settings& s) {
  auto name = [&](const std::string& url, std::string_view fallback) {
    if (url.empty()) return std::string(fallback);
    return url.substr(url.rfind('/') + 1);
  };
  return {name(s.sqs_regular_queue_url, kRegularQueueName),
          name(s.sqs_priority_queue_url, kPriorityQueueName)};
}

Result<std::shared_ptr<Queue>> CreateOrUpdate(SqsQueueService& service, const std::string& name,
                                              const QueueAttributes& attributes) {
  auto created = service.CreateQueue(name, attributes);
  if (created) return created;
  if (created.error().code != "QueueAlreadyExists") return created;
  // It exists with other attributes: bring it to these.
  std::cerr << fmt::format("postline: {} exists with other attributes; updating them\n", name);
  if (auto set = service.SetQueueAttributes(name, attributes); !set) {
    return std::unexpected(set.error());
  }
  return service.GetQueue(name);
}

int RunQueuesCreate(Context& ctx, const CreateOptions& o) {
  auto client = NewAwsClient(ctx.settings, "sqs");
  if (!client) return PrintError(client.error(), kExitConfig);
  SqsOptions options;
  options.client = *client;
  auto service = NewSqsQueueService(options);
  QueueAttributes attributes;
  attributes.visibility_timeout_seconds = o.visibility_timeout;
  attributes.message_retention_seconds = o.retention;
  attributes.delay_seconds = o.delay;
  attributes.maximum_message_size = o.maximum_message_size;
  attributes.receive_message_wait_time_seconds = o.wait;
  const int max_receive_count =
      o.max_receive_count > 0 ? o.max_receive_count : ctx.settings.max_receive_count;
  auto [regular, priority] = QueueNames(ctx.settings);
  std::map<std::string, std::string> urls;
  for (const auto& name : {regular, priority}) {
    QueueAttributes dlq_attributes = attributes;
    dlq_attributes.message_retention_seconds = kMaxRetentionSeconds;  // 14 days to inspect
    dlq_attributes.redrive_policy.reset();
    const std::string dlq_name = DeadLetterQueueName(name);
    auto dlq = CreateOrUpdate(*service, dlq_name, dlq_attributes);
    if (!dlq) return PrintError(dlq.error(), ExitCodeFor(dlq.error()));
    QueueAttributes queue_attributes = attributes;
    queue_attributes.redrive_policy = RedrivePolicy{dlq_name, max_receive_count};
    auto queue = CreateOrUpdate(*service, name, queue_attributes);
    if (!queue) return PrintError(queue.error(), ExitCodeFor(queue.error()));
    for (const auto& n : {dlq_name, name}) {
      if (o.sse) {
        if (auto sse = service->EnableManagedSse(n); !sse) {
          return PrintError(sse.error(), ExitCodeFor(sse.error()));
        }
      }
      auto url = service->QueueUrl(n);
      if (!url) return PrintError(url.error(), ExitCodeFor(url.error()));
      urls[n] = *url;
    }
  }
  std::cout << "SQS_REGULAR_QUEUE_URL=" << urls[regular] << "\n";
  std::cout << "SQS_PRIORITY_QUEUE_URL=" << urls[priority] << "\n";
  std::cout << "# dead-letter queues (found by name, \"<queue>-dlq\"):\n";
  std::cout << "#   " << urls[DeadLetterQueueName(regular)] << "\n";
  std::cout << "#   " << urls[DeadLetterQueueName(priority)] << "\n";
  return kExitOk;
}

std::string ArnOf(const Settings& s, const std::string& url, const std::string& name) {
  std::string region = s.aws_region.empty() ? "*" : s.aws_region;
  std::string account = "*";
  if (!url.empty()) {
    if (auto parsed = ParseSqsQueueUrl(url, true, "SQS_QUEUE_URL")) {
      if (!parsed->region.empty()) region = parsed->region;
      account = parsed->account_id;
    }
  }
  return fmt::format("arn:aws:sqs:{}:{}:{}", region, account, name);
}

int RunAwsPolicy(Context& ctx) {
  const Settings& s = ctx.settings;
  auto [regular, priority] = QueueNames(s);
  auto dlq_url = [](const std::string& url) { return url.empty() ? url : url + "-dlq"; };
  std::vector<std::string> arns = {
      ArnOf(s, s.sqs_regular_queue_url, regular),
      ArnOf(s, s.sqs_priority_queue_url, priority),
      ArnOf(s, dlq_url(s.sqs_regular_queue_url), DeadLetterQueueName(regular)),
      ArnOf(s, dlq_url(s.sqs_priority_queue_url), DeadLetterQueueName(priority)),
  };
  if (s.sqs_regular_queue_url.empty() || s.sqs_priority_queue_url.empty()) {
    std::cerr << "postline: SQS_REGULAR_QUEUE_URL / SQS_PRIORITY_QUEUE_URL not set; the policy "
                 "uses \"*\" for the account id\n";
  }
  std::cout << aws::LeastPrivilegePolicy(arns, s.email_provider == EmailProvider::kSes,
                                         s.blob_bucket)
            << "\n";
  return kExitOk;
}

}  // namespace

aws::AwsOptions AwsOptionsFromSettings(const Settings& s) {
  auto vars = EnvironmentVariables();
  if (const char* home = std::getenv("HOME")) vars["HOME"] = home;
  aws::AwsOptions o = aws::AwsOptionsFromVariables(vars);
  // Settings (.env merged with the environment) win over the bare environment.
  o.region = s.aws_region.empty() ? o.region : s.aws_region;
  o.access_key_id = s.aws_access_key_id;
  o.secret_access_key = s.aws_secret_access_key;
  o.session_token = s.aws_session_token;
  if (!s.aws_profile.empty()) o.profile = s.aws_profile;
  if (!s.aws_endpoint.empty()) o.endpoint = s.aws_endpoint;
  if (!s.aws_endpoint_sqs.empty()) o.service_endpoints["sqs"] = s.aws_endpoint_sqs;
  if (!s.aws_endpoint_ses.empty()) o.service_endpoints["ses"] = s.aws_endpoint_ses;
  if (!s.aws_endpoint_s3.empty()) o.service_endpoints["s3"] = s.aws_endpoint_s3;
  return o;
}

Result<std::shared_ptr<aws::AwsClient>> NewAwsClient(const Settings& settings,
                                                     std::string_view service) {
  aws::AwsOptions options = AwsOptionsFromSettings(settings);
  auto region = aws::ResolveRegion(options);
  if (!region) return std::unexpected(region.error());
  aws::AwsClientOptions client;
  client.service = std::string(service);
  client.region = *region;
  client.endpoint = aws::ResolveEndpoint(options, service, *region);
  client.credentials = aws::NewDefaultCredentialsChain(options);
  return std::make_shared<aws::AwsClient>(std::move(client));
}

Command RegisterQueuesCreateCommand(CLI::App& app) {
  auto options = std::make_shared<CreateOptions>();
  CLI::App* queues = app.get_subcommand("queues");
  auto* create = queues->add_subcommand(
      "create", "Create both SQS queues and their DLQs (idempotent); prints the URLs for .env");
  create
      ->add_option("--visibility-timeout", options->visibility_timeout,
                   "VisibilityTimeout, s (default 300)")
      ->check(CLI::Range(0, kMaxVisibilityTimeoutSeconds));
  create
      ->add_option("--retention", options->retention, "MessageRetentionPeriod, s (default 345600)")
      ->check(CLI::Range(kMinRetentionSeconds, kMaxRetentionSeconds));
  create->add_option("--delay", options->delay, "DelaySeconds (default 0)")
      ->check(CLI::Range(0, kMaxDelaySeconds));
  create
      ->add_option("--max-size", options->maximum_message_size,
                   "MaximumMessageSize, bytes (default 262144)")
      ->check(CLI::Range(kMinMaximumMessageSize, kMaxMaximumMessageSize));
  create->add_option("--wait", options->wait, "ReceiveMessageWaitTimeSeconds (default 0)")
      ->check(CLI::Range(0, kMaxWaitTimeSeconds));
  create
      ->add_option("--max-receive-count", options->max_receive_count,
                   "RedrivePolicy maxReceiveCount (default POSTLINE_MAX_RECEIVE_COUNT)")
      ->check(CLI::Range(1, 1000));
  create->add_flag("--sse", options->sse, "Enable SSE-SQS (SqsManagedSseEnabled)");
  return Command{create, [options](Context& ctx) { return RunQueuesCreate(ctx, *options); }};
}

Command RegisterAwsPolicyCommand(CLI::App& app) {
  auto* aws_cmd = app.add_subcommand("aws", "AWS helpers");
  aws_cmd->require_subcommand(1);
  auto* policy = aws_cmd->add_subcommand(
      "policy", "Print the least-privilege IAM policy for the configured queues (and SES, S3)");
  return Command{policy, [](Context& ctx) { return RunAwsPolicy(ctx); }};
}

json ProbeAwsPermissions(const Context& ctx, bool* healthy) {
  json out = json::object();
  json missing = json::array();
  const Settings& s = ctx.settings;
  if (s.queue_provider == QueueProvider::kSqs) {
    auto client = NewAwsClient(s, "sqs");
    if (!client) {
      out["error"] = client.error().ToString();
      *healthy = false;
    } else {
      for (const auto& url : {s.sqs_priority_queue_url, s.sqs_regular_queue_url}) {
        if (url.empty()) continue;
        for (const auto& p : ProbeSqsPermissions(**client, url)) {
          if (!p.allowed) {
            missing.push_back({{"action", p.action},
                               {"queue", url.substr(url.rfind('/') + 1)},
                               {"detail", p.detail}});
          }
        }
      }
    }
  }
  if (s.email_provider == EmailProvider::kSes) {
    auto client = NewAwsClient(s, "ses");
    if (client) {
      auto p = ProbeSesPermission(**client);
      if (!p.allowed) missing.push_back({{"action", p.action}, {"detail", p.detail}});
    }
  }
  out["missing_permissions"] = missing;
  if (!missing.empty()) *healthy = false;
  return out;
}

}  // namespace postline::app
