#include "push_lease.h"

#if defined(__linux__)
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#define HOTMETER_PUSH_LEASE 1
#endif

namespace hotmeter {

bool PushLease::TryHold(const std::string& segmentPath) {
  if (fd_ >= 0) return true;
#ifdef HOTMETER_PUSH_LEASE
  // O_CLOEXEC: a child exec'd by this process (node:cluster forks and execs) does not
  // inherit the open file description, and with it the lock.
  const int fd = open(PathFor(segmentPath).c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0 ||
      flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return false;
  }
  fd_ = fd;
  return true;
#else
  (void)segmentPath;
  return false;
#endif
}

void PushLease::Release() {
#ifdef HOTMETER_PUSH_LEASE
  if (fd_ >= 0) close(fd_);  // drops the flock
#endif
  fd_ = -1;
}

}  // namespace hotmeter
