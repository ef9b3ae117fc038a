#include "postline/clock.h"

#include "postline/env.h"

namespace postline {

// The production clock is the production Env's.
std::shared_ptr<Clock> SystemClock() { return DefaultEnv(); }

}  // namespace postline
