// EnvState: per Node environment (main thread or worker). Created at module init,
// owned by the environment's instance data; its arena is retired by the env cleanup hook.
#pragma once
// See docs/design.md, "Worker threads, attach and environment cleanup".
#include <cstdint>

namespace hotmeter {

struct EnvState {
  uint32_t arenaId = 0;
  bool retired = false;
};

}  // namespace hotmeter
