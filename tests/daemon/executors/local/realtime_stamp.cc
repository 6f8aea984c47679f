// Prints CLOCK_REALTIME in nanoseconds, as early as a program can.
#include <time.h>

#include <cstdio>

int main() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  std::printf("%lld\n", static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec);
  return 0;
}
