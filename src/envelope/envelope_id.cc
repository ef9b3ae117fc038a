// Envelope ids: ULIDs (https://github.com/ulid/spec), monotonic per thread.
#include <sys/random.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>

#include "postline/clock.h"
#include "postline/envelope.h"

namespace postline {
namespace {

constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::uint64_t kMaxTimestamp = (std::uint64_t{1} << 48) - 1;

// 80 random bits as 10 big-endian bytes.
using Entropy = std::array<unsigned char, 10>;

void FillRandom(Entropy& bytes) {
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t n = getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (n <= 0) break;
    filled += static_cast<std::size_t>(n);
  }
  if (filled < bytes.size()) {
    // getrandom(2) is unavailable (very old kernel or seccomp); fall back to
    // the C++ library's non-deterministic source.
    std::random_device device;
    for (std::size_t i = filled; i < bytes.size(); ++i) {
      bytes[i] = static_cast<unsigned char>(device());
    }
  }
}

// Adds one to the 80-bit big-endian number; false on overflow.
bool Increment(Entropy& bytes) {
  for (std::size_t i = bytes.size(); i-- > 0;) {
    if (++bytes[i] != 0) return true;
  }
  return false;
}

struct ThreadState {
  std::uint64_t last_millis = 0;
  Entropy last_entropy{};
  bool has_last = false;
};

}  // namespace

std::string NewEnvelopeId(const Clock& clock) {
  thread_local ThreadState state;
  const long long now = ToUnixMillis(clock.Now());
  std::uint64_t millis = now < 0 ? 0 : static_cast<std::uint64_t>(now);
  if (millis > kMaxTimestamp) millis = kMaxTimestamp;

  Entropy entropy;
  if (state.has_last && millis == state.last_millis) {
    entropy = state.last_entropy;
    if (!Increment(entropy)) FillRandom(entropy);
  } else {
    FillRandom(entropy);
  }
  state.last_millis = millis;
  state.last_entropy = entropy;
  state.has_last = true;

  std::string id(26, '0');
  // 48-bit time: 10 characters of 5 bits (the first carries 3 bits).
  for (int i = 9; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kCrockford[millis & 0x1F];
    millis >>= 5;
  }
  // 80 random bits: 16 characters of 5 bits.
  std::uint64_t high = 0;  // first 40 bits
  std::uint64_t low = 0;   // last 40 bits
  for (std::size_t i = 0; i < 5; ++i) high = (high << 8) | entropy[i];
  for (std::size_t i = 5; i < 10; ++i) low = (low << 8) | entropy[i];
  for (int i = 7; i >= 0; --i) {
    id[static_cast<std::size_t>(10 + i)] = kCrockford[high & 0x1F];
    high >>= 5;
    id[static_cast<std::size_t>(18 + i)] = kCrockford[low & 0x1F];
    low >>= 5;
  }
  return id;
}

std::string NewEnvelopeId() { return NewEnvelopeId(*SystemClock()); }

}  // namespace postline
