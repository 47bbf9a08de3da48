// Preloaded into node by probe.ts: now and then, a thread that unlocks a mutex sleeps a little right after.
// That widens the windows in which two threads race, so that a race seen once in many CI runs shows within
// minutes. SLOW_PERMILLE sets how often (per thousand unlocks; default 50), SLOW_MAX_US the longest sleep in
// microseconds (default 1000; each sleep is between a fifth of it and all of it).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static int (*real_unlock)(pthread_mutex_t *);
static __thread unsigned seed;
static int permille = -1;
static unsigned max_us;

int pthread_mutex_unlock(pthread_mutex_t *mutex) {
  if (real_unlock == NULL) real_unlock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_unlock");
  int result = real_unlock(mutex);
  if (permille < 0) {
    const char *s = getenv("SLOW_PERMILLE");
    permille = s != NULL ? atoi(s) : 50;
    const char *m = getenv("SLOW_MAX_US");
    max_us = m != NULL ? (unsigned)atoi(m) : 1000;
  }
  if (seed == 0) seed = (unsigned)(size_t)&seed ^ (unsigned)getpid();
  if ((unsigned)rand_r(&seed) % 1000 < (unsigned)permille) usleep(max_us / 5 + rand_r(&seed) % (max_us - max_us / 5 + 1));
  return result;
}
