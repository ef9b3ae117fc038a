// Prometheus metrics (prometheus-cpp core: Registry + TextSerializer; served
// by our own HTTP server, not prometheus-cpp's Exposer).
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <mutex>

#include "postline/api.h"

namespace postline::api {

struct Metrics::Impl {
  explicit Impl(std::string transport_name)
      : transport(std::move(transport_name)),
        registry(std::make_shared<prometheus::Registry>()),
        http_requests(prometheus::BuildCounter()
                          .Name("postline_http_requests_total")
                          .Help("HTTP requests answered, by method, route and status code")
                          .Register(*registry)),
        sent(prometheus::BuildCounter()
                 .Name("postline_emails_sent_total")
                 .Help("E-mails the transport accepted, by transport and lane")
                 .Register(*registry)),
        failed(prometheus::BuildCounter()
                   .Name("postline_emails_failed_total")
                   .Help("Failed delivery attempts by transport, lane and outcome (transient: "
                         "retried later; permanent, expired, unparseable: moved to the DLQ)")
                   .Register(*registry)),
        send_duration(
            prometheus::BuildHistogram()
                .Name("postline_send_duration_seconds")
                .Help("Time from the start of a send to its outcome, by transport and lane")
                .Register(*registry)),
        available(prometheus::BuildGauge()
                      .Name("postline_queue_messages_available")
                      .Help("Messages available for retrieval (ApproximateNumberOfMessages)")
                      .Register(*registry)),
        in_flight(prometheus::BuildGauge()
                      .Name("postline_queue_messages_in_flight")
                      .Help("Messages received and not yet deleted "
                            "(ApproximateNumberOfMessagesNotVisible)")
                      .Register(*registry)),
        delayed(prometheus::BuildGauge()
                    .Name("postline_queue_messages_delayed")
                    .Help("Messages not yet visible because of a delay "
                          "(ApproximateNumberOfMessagesDelayed)")
                    .Register(*registry)),
        oldest_age(
            prometheus::BuildGauge()
                .Name("postline_queue_oldest_message_age_seconds")
                .Help("Age of the oldest message in the queue (ApproximateAgeOfOldestMessage)")
                .Register(*registry)),
        dlq_depth(
            prometheus::BuildGauge()
                .Name("postline_dlq_messages")
                .Help("Messages in a lane's dead-letter queue (available + in flight + delayed)")
                .Register(*registry)),
        sent_log(prometheus::BuildGauge()
                     .Name("postline_sent_log_records")
                     .Help("Deliveries kept by the sent log, by the queue they came from")
                     .Register(*registry)),
        depth_alarm(prometheus::BuildGauge()
                        .Name("postline_queue_depth_alarm_threshold")
                        .Help("POSTLINE_DEPTH_ALARM: a warning is logged while a queue holds more "
                              "messages")
                        .Register(*registry)
                        .Add({})) {}

  std::string transport;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& http_requests;
  prometheus::Family<prometheus::Counter>& sent;
  prometheus::Family<prometheus::Counter>& failed;
  prometheus::Family<prometheus::Histogram>& send_duration;
  prometheus::Family<prometheus::Gauge>& available;
  prometheus::Family<prometheus::Gauge>& in_flight;
  prometheus::Family<prometheus::Gauge>& delayed;
  prometheus::Family<prometheus::Gauge>& oldest_age;
  prometheus::Family<prometheus::Gauge>& dlq_depth;
  prometheus::Family<prometheus::Gauge>& sent_log;
  prometheus::Gauge& depth_alarm;
};

namespace {

const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return kBuckets;
}

// Counts outcomes and forwards every event.
class MetricsObserver final : public StatusObserver {
 public:
  MetricsObserver(std::shared_ptr<Metrics::Impl> impl, std::shared_ptr<StatusObserver> inner,
                  std::string priority_queue)
      : impl_(std::move(impl)),
        inner_(std::move(inner)),
        priority_queue_(std::move(priority_queue)),
        priority_dlq_(DeadLetterQueueName(priority_queue_)) {}

  void OnStatus(const StatusEvent& ev) override {
    using State = StatusEvent::State;
    const std::string lane =
        ev.queue == priority_queue_ || ev.queue == priority_dlq_ ? "priority" : "regular";
    const prometheus::Labels labels = {{"transport", impl_->transport}, {"lane", lane}};
    const auto now = std::chrono::steady_clock::now();
    std::optional<double> took;
    if (ev.state == State::kSending) {
      std::lock_guard lock(mu_);
      started_[ev.envelope_id] = now;
    } else if (ev.state != State::kQueued) {
      std::lock_guard lock(mu_);
      auto it = started_.find(ev.envelope_id);
      if (it != started_.end()) {
        took = std::chrono::duration<double>(now - it->second).count();
        started_.erase(it);
      }
    }
    switch (ev.state) {
      case State::kSent:
        impl_->sent.Add(labels).Increment();
        break;
      case State::kRetrying:
        impl_->failed
            .Add({{"transport", impl_->transport}, {"lane", lane}, {"outcome", "transient"}})
            .Increment();
        break;
      case State::kDead: {
        // The worker's detail starts with the DLQ reason ("permanent: …").
        std::string outcome = ev.detail.substr(0, ev.detail.find(':'));
        if (outcome != "expired" && outcome != "unparseable") outcome = "permanent";
        impl_->failed.Add({{"transport", impl_->transport}, {"lane", lane}, {"outcome", outcome}})
            .Increment();
        break;
      }
      case State::kQueued:
      case State::kSending:
        break;
    }
    if (took) impl_->send_duration.Add(labels, DurationBuckets()).Observe(*took);
    if (inner_) inner_->OnStatus(ev);
  }

 private:
  std::shared_ptr<Metrics::Impl> impl_;
  std::shared_ptr<StatusObserver> inner_;
  std::string priority_queue_;
  std::string priority_dlq_;
  std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> started_;
};

}  // namespace

Metrics::Metrics(std::string transport) : impl_(std::make_shared<Impl>(std::move(transport))) {
  // Zero-valued series for both lanes, so dashboards see them before the
  // first delivery.
  for (const char* lane : {"priority", "regular"}) {
    impl_->sent.Add({{"transport", impl_->transport}, {"lane", lane}});
    impl_->send_duration.Add({{"transport", impl_->transport}, {"lane", lane}}, DurationBuckets());
  }
}

Metrics::~Metrics() = default;

std::shared_ptr<StatusObserver> Metrics::Observe(std::shared_ptr<StatusObserver> inner,
                                                 std::string priority_queue) {
  return std::make_shared<MetricsObserver>(impl_, std::move(inner), std::move(priority_queue));
}

void Metrics::CountRequest(std::string_view method, std::string_view route, int status) {
  impl_->http_requests
      .Add({{"method", std::string(method)},
            {"route", std::string(route)},
            {"code", std::to_string(status)}})
      .Increment();
}

void Metrics::SetQueue(const std::string& queue, const QueueStats& stats,
                       const std::string& dlq_of) {
  const prometheus::Labels labels = {{"queue", queue}};
  impl_->available.Add(labels).Set(static_cast<double>(stats.approximate_number_of_messages));
  impl_->in_flight.Add(labels).Set(
      static_cast<double>(stats.approximate_number_of_messages_not_visible));
  impl_->delayed.Add(labels).Set(static_cast<double>(stats.approximate_number_of_messages_delayed));
  impl_->oldest_age.Add(labels).Set(
      static_cast<double>(stats.approximate_age_of_oldest_message_seconds));
  if (!dlq_of.empty()) {
    impl_->dlq_depth.Add({{"queue", dlq_of}, {"dlq", queue}})
        .Set(static_cast<double>(stats.approximate_number_of_messages +
                                 stats.approximate_number_of_messages_not_visible +
                                 stats.approximate_number_of_messages_delayed));
  }
}

void Metrics::SetSentLogTotal(const std::string& queue, std::int64_t total) {
  impl_->sent_log.Add({{"queue", queue}}).Set(static_cast<double>(total));
}

void Metrics::SetDepthAlarm(std::int64_t threshold) {
  impl_->depth_alarm.Set(static_cast<double>(threshold));
}

std::string Metrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(impl_->registry->Collect());
}

}  // namespace postline::api
