// queue_send_loop DB QUEUE COUNT: sends COUNT messages ("message <i>") to
// QUEUE (created with default attributes) in the sqlite queue database DB and
// writes each message id to stdout, one per line, right after SendMessage
// returned it. Used by the kill -9 durability test, which kills this process
// in the middle of the loop.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "postline/queue.h"

namespace {

bool WriteAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fputs("usage: queue_send_loop DB QUEUE COUNT\n", stderr);
    return 2;
  }
  auto service = postline::OpenSqliteQueueService(argv[1]);
  if (!service) {
    std::fprintf(stderr, "%s\n", service.error().ToString().c_str());
    return 1;
  }
  auto queue = (*service)->CreateQueue(argv[2], postline::QueueAttributes{});
  if (!queue) {
    std::fprintf(stderr, "%s\n", queue.error().ToString().c_str());
    return 1;
  }
  const int count = std::atoi(argv[3]);
  for (int i = 0; i < count; ++i) {
    postline::SendMessageRequest request;
    request.body = fmt::format("message {}", i);
    auto sent = (*queue)->SendMessage(request);
    if (!sent) {
      std::fprintf(stderr, "%s\n", sent.error().ToString().c_str());
      return 1;
    }
    if (!WriteAll(STDOUT_FILENO, sent->message_id + "\n")) return 1;
  }
  return 0;
}
