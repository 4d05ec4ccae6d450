/*
 * director-tmpfs-size: resizes tmpfs mounts of a running container (Director's warm pool fits a
 * pooled sandbox's `disk` limit with it; see docs/decisions.md, "Fitting the pool").
 *
 *   director-tmpfs-size PID PATH SIZE_BYTES NOEXEC(0|1) [PATH SIZE_BYTES NOEXEC ...]
 *
 * Joins the mount namespace of PID (the container's init, as seen from the host) and remounts
 * each PATH with `size=SIZE_BYTES`. A remount replaces the mount's flags, so the ones Director
 * gives every writable tmpfs (nosuid, nodev, and noexec when execution is not allowed) are
 * passed again; the atime flags are kept by the kernel. Nothing of the container is executed:
 * this program runs from the host's filesystem, only its mount(2) calls happen in the
 * container's namespace. Run as root by the engine driver (local engine only), before the
 * sandbox is handed to anyone. Exit status 0: every mount resized; 1: one failed (stderr says which).
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

static int fail(const char *what, const char *arg) {
  fprintf(stderr, "director-tmpfs-size: %s %s: %s\n", what, arg, strerror(errno));
  return 1;
}

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

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 2) % 3 != 0) {
    fprintf(stderr, "usage: director-tmpfs-size PID PATH SIZE_BYTES NOEXEC [PATH SIZE_BYTES NOEXEC ...]\n");
    return 2;
  }
  char *end;
  long pid = strtol(argv[1], &end, 10);
  if (*end || pid <= 1) {
    fprintf(stderr, "director-tmpfs-size: bad pid %s\n", argv[1]);
    return 2;
  }
  for (int i = 2; i < argc; i += 3) {
    unsigned long long size = strtoull(argv[i + 1], &end, 10);
    if (!valid_path(argv[i]) || *end || size == 0 || (strcmp(argv[i + 2], "0") && strcmp(argv[i + 2], "1"))) {
      fprintf(stderr, "director-tmpfs-size: bad mount %s %s %s\n", argv[i], argv[i + 1], argv[i + 2]);
      return 2;
    }
  }
  char ns[64];
  snprintf(ns, sizeof ns, "/proc/%ld/ns/mnt", pid);
  int fd = open(ns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("open", ns);
  if (setns(fd, CLONE_NEWNS) != 0) return fail("setns", ns);
  close(fd);
  for (int i = 2; i < argc; i += 3) {
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", argv[i + 1]);
    unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (argv[i + 2][0] == '1' ? MS_NOEXEC : 0);
    if (mount("tmpfs", argv[i], "tmpfs", flags, opts) != 0) return fail("remount", argv[i]);
  }
  return 0;
}
