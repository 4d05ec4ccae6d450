/*
 * director-tmpfs-size: resizes tmpfs mounts of a running container (Director's warm pool fits a
 * pooled sandbox's `disk` limit with it; see docs/decisions.md, "Fitting the pool").
 *
 *   director-tmpfs-size PID PATH SIZE_BYTES NOEXEC(0|1) [PATH SIZE_BYTES NOEXEC ...]
 *   director-tmpfs-size --serve
 *
 * Joins the mount namespace of PID (the container's init, as seen from the host) and remounts
 * each PATH with `size=SIZE_BYTES`. A remount replaces the mount's flags, so the ones Director
 * gives every writable tmpfs (nosuid, nodev, and noexec when execution is not allowed) are
 * passed again; the atime flags are kept by the kernel. Nothing of the container is executed:
 * this program runs from the host's filesystem, only its mount(2) calls happen in the
 * container's namespace. Run as root by the engine driver (local engine only), before the
 * sandbox is handed to anyone. Exit status 0: every mount resized; 1: one failed (stderr says which).
 *
 * `--serve` does the same for one request per line read from stdin (the arguments above,
 * separated by single spaces) and answers each with one line on stdout, `ok` or `err MESSAGE`,
 * in order, until stdin closes. Director keeps one such process: spawning one per resize cost
 * 25-40 ms of its event loop each (fork of a large process), 500 ms for 20 at once. Between
 * requests the process returns to the mount namespace it started in, so every PID is looked up
 * in the host's /proc; if it cannot return it exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define MAX_ARGS (1 + 3 * 16)

static int valid_path(const char *p) {
  size_t n = strlen(p);
  if (n < 2 || n > 256 || p[0] != '/' || p[n - 1] == '/') return 0;
  if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../")) return 0;
  if (n >= 2 && strcmp(p + n - 2, "/.") == 0) return 0;
  if (n >= 3 && strcmp(p + n - 3, "/..") == 0) return 0;
  for (const char *c = p; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("/._@+-", *c))) return 0;
  return 1;
}

/* Checks `PID (PATH SIZE NOEXEC)+`; 0 when valid, else writes why into err. */
static int check(int n, char **a, long *pid, char *err, size_t errlen) {
  if (n < 4 || (n - 1) % 3 != 0) {
    snprintf(err, errlen, "usage: PID PATH SIZE_BYTES NOEXEC [PATH SIZE_BYTES NOEXEC ...]");
    return 2;
  }
  char *end;
  *pid = strtol(a[0], &end, 10);
  if (*end || *pid <= 1) {
    snprintf(err, errlen, "bad pid %.32s", a[0]);
    return 2;
  }
  for (int i = 1; i < n; i += 3) {
    unsigned long long size = strtoull(a[i + 1], &end, 10);
    if (!valid_path(a[i]) || *end || size == 0 || a[i + 1][0] == '-' || (strcmp(a[i + 2], "0") && strcmp(a[i + 2], "1"))) {
      snprintf(err, errlen, "bad mount %.260s %.32s %.4s", a[i], a[i + 1], a[i + 2]);
      return 2;
    }
  }
  return 0;
}

/* Remounts each (PATH SIZE NOEXEC) of a[1..n) in the current mount namespace. */
static int remount(int n, char **a, char *err, size_t errlen) {
  for (int i = 1; i < n; i += 3) {
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", a[i + 1]);
    unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (a[i + 2][0] == '1' ? MS_NOEXEC : 0);
    if (mount("tmpfs", a[i], "tmpfs", flags, opts) != 0) {
      snprintf(err, errlen, "remount %.260s: %s", a[i], strerror(errno));
      return 1;
    }
  }
  return 0;
}

static int open_ns(long pid, char *err, size_t errlen) {
  char ns[64];
  snprintf(ns, sizeof ns, "/proc/%ld/ns/mnt", pid);
  int fd = open(ns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) snprintf(err, errlen, "open %s: %s", ns, strerror(errno));
  return fd;
}

static int serve(void) {
  int home = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    fprintf(stderr, "director-tmpfs-size: open own mount namespace: %s\n", strerror(errno));
    return 1;
  }
  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    char err[512] = "";
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n') {
      printf("err line too long\n");
      fflush(stdout);
      /* Skip the rest of an overlong line. */
      int c;
      while (len && line[len - 1] != '\n' && (c = getchar()) != EOF && c != '\n') {
      }
      continue;
    }
    line[len - 1] = '\0';
    char *a[MAX_ARGS + 1];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
      if (n == MAX_ARGS) {
        n = -1;
        break;
      }
      a[n++] = t;
    }
    long pid = 0;
    int rc = n < 0 ? (snprintf(err, sizeof err, "too many mounts"), 2) : check(n, a, &pid, err, sizeof err);
    if (rc == 0) {
      int fd = open_ns(pid, err, sizeof err);
      if (fd < 0) rc = 1;
      else {
        if (setns(fd, CLONE_NEWNS) != 0) {
          snprintf(err, sizeof err, "setns %ld: %s", pid, strerror(errno));
          rc = 1;
        } else {
          rc = remount(n, a, err, sizeof err);
          if (setns(home, CLONE_NEWNS) != 0) {
            fprintf(stderr, "director-tmpfs-size: cannot return to its own mount namespace: %s\n", strerror(errno));
            return 1;
          }
        }
        close(fd);
      }
    }
    if (rc == 0) printf("ok\n");
    else printf("err %s\n", err);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--serve") == 0) return serve();
  char err[512];
  long pid;
  if (check(argc - 1, argv + 1, &pid, err, sizeof err) != 0) {
    fprintf(stderr, "director-tmpfs-size: %s\n", err);
    return 2;
  }
  int fd = open_ns(pid, err, sizeof err);
  if (fd < 0 || setns(fd, CLONE_NEWNS) != 0) {
    if (fd >= 0) snprintf(err, sizeof err, "setns %ld: %s", pid, strerror(errno));
    fprintf(stderr, "director-tmpfs-size: %s\n", err);
    return 1;
  }
  close(fd);
  if (remount(argc - 1, argv + 1, err, sizeof err) != 0) {
    fprintf(stderr, "director-tmpfs-size: %s\n", err);
    return 1;
  }
  return 0;
}
