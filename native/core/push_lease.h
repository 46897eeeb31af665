// PushLease: which process of a processShared fleet pushes the fleet's series
// (docs/design.md, "Push readers"). Every process's collection sees every process's
// counts, so if every process's push reader exported them, a backend would receive the
// fleet's series once per process. The lease is an exclusive flock(2) on the file
// `<segment path>.push`: at most one process holds it, and the kernel drops it when its
// holder closes it or exits, SIGKILL included, so the next process that asks takes over.
// No table, no liveness check, nothing left behind but the empty file (removed with the
// segment by SharedSegment::Cleanup).
#pragma once
#include <string>

namespace hotmeter {

class PushLease {
 public:
  PushLease() = default;
  PushLease(const PushLease&) = delete;
  PushLease& operator=(const PushLease&) = delete;
  ~PushLease() { Release(); }

  // True if this process holds the lease on `segmentPath` (taking it if no process
  // holds it). False where there is no flock (not Linux) or the file cannot be opened.
  bool TryHold(const std::string& segmentPath);
  // Gives the lease up (another process's next TryHold takes it).
  void Release();
  bool held() const { return fd_ >= 0; }

  // The lease file of a segment.
  static std::string PathFor(const std::string& segmentPath) { return segmentPath + ".push"; }

 private:
  int fd_ = -1;  // the open, flocked lease file while held
};

}  // namespace hotmeter
