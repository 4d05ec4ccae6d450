/* Paths below the mount: the rules and the opens that never follow a symlink (see tree.h). */
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else /* kernel headers before 5.6: the kernel's own definitions */
#include <stdint.h>
struct open_how {
  uint64_t flags, mode, resolve;
};
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#endif
#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif

void die_oom(void) {
  fputs("director-tree: out of memory\n", stderr);
  exit(1);
}

const char *path_problem(const char *p) {
  if (!*p) return "an empty path";
  if (*p == '/') return "an absolute path";
  if (strlen(p) > MAX_NAME) return "a path longer than 4096 bytes";
  for (const char *c = p;;) {
    size_t k = strcspn(c, "/");
    if (k == 0) return "an empty path component";
    if (k == 1 && c[0] == '.') return "a `.` path component";
    if (k == 2 && c[0] == '.' && c[1] == '.') return "a `..` path component";
    if (k > NAME_MAX) return "a path component longer than 255 bytes";
    if (!c[k]) return NULL;
    c += k + 1;
  }
}

/* 0 once openat2 was refused here (a kernel before 5.6, or a seccomp profile without it): the walk then. */
static int have_openat2 = 1;

void tree_walk_only(void) { have_openat2 = 0; }

/*
 * Directory `dir` below `at` in one call: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * refuses a symlink in any component (ELOOP, where the walk's O_NOFOLLOW | O_DIRECTORY gives
 * ENOTDIR: callers take both alike) and resolves nothing outside `at`. -2 when it cannot be
 * used (then the caller walks).
 */
static int open_dir_openat2(int at, const char *dir) {
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
  int fd = (int)syscall(SYS_openat2, at, dir, &how, sizeof how);
  if (fd >= 0) return fd;
  if (errno == ENOSYS || errno == EPERM || errno == EINVAL || errno == E2BIG) {
    have_openat2 = 0;
    return -2;
  }
  /* EAGAIN (a rename racing a `..` lookup under RESOLVE_BENEATH) needs a `..`, which no path here holds: walked, if ever. */
  return errno == EAGAIN ? -2 : -1;
}

int open_parent(int at, const char *p, const char **leaf) {
  if (path_problem(p)) {
    errno = EINVAL;
    return -1;
  }
  const char *slash = strrchr(p, '/');
  if (slash && have_openat2) {
    char dir[MAX_NAME + 1];
    size_t len = (size_t)(slash - p);
    memcpy(dir, p, len);
    dir[len] = 0;
    int fd = open_dir_openat2(at, dir);
    if (fd != -2) {
      *leaf = slash + 1;
      return fd;
    }
  }
  int fd = openat(at, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  char comp[NAME_MAX + 1];
  for (const char *c = p; fd >= 0;) {
    size_t k = strcspn(c, "/");
    if (!c[k]) {
      *leaf = c;
      return fd;
    }
    memcpy(comp, c, k);
    comp[k] = 0;
    int next = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    errno = e;
    fd = next;
    c += k + 1;
  }
  return -1;
}

int open_beneath(int at, const char *p, int flags) {
  if (!*p || !strcmp(p, ".")) return openat(at, ".", flags | O_CLOEXEC);
  const char *leaf;
  int dir = open_parent(at, p, &leaf);
  if (dir < 0) return -1;
  int fd = openat(dir, leaf, flags | O_NOFOLLOW | O_CLOEXEC);
  int e = errno;
  close(dir);
  errno = e;
  return fd;
}

int lstat_beneath(int at, const char *p, struct stat *st) {
  const char *leaf;
  int dir = open_parent(at, p, &leaf);
  if (dir < 0) return -1;
  int r = fstatat(dir, leaf, st, AT_SYMLINK_NOFOLLOW);
  int e = errno;
  close(dir);
  errno = e;
  return r;
}

int chmod_fd(int fd, mode_t mode) {
  if (fchmod(fd, mode) == 0) return 0;
  if (errno != EBADF) return -1;
  /* An O_PATH fd (a directory that cannot be opened for reading): through its /proc link. */
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  return fchmodat(AT_FDCWD, link, mode, 0);
}

int rename_beneath(int at, const char *from, const char *to) {
  const char *lf, *lt;
  int df = open_parent(at, from, &lf);
  if (df < 0) return -1;
  int dt = open_parent(at, to, &lt);
  if (dt < 0) {
    int e = errno;
    close(df);
    errno = e;
    return -1;
  }
  int r = renameat(df, lf, dt, lt);
  int e = errno;
  close(df);
  close(dt);
  errno = e;
  return r;
}

int rm_tree(int at, const char *name) {
  if (unlinkat(at, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    /* A directory it may not read: made u+rwx through an O_PATH fd of that very directory. */
    int p = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p >= 0) {
      if (chmod_fd(p, 0700) == 0) fd = openat(p, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      close(p);
    }
  }
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700) fchmod(fd, st.st_mode | 0700);
  DIR *d = fdopendir(fd);
  if (!d) return close(fd), -1;
  int bad = 0;
  for (struct dirent *de; (de = readdir(d));) {
    const char *nm = de->d_name;
    if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2]))) continue;
    if (rm_tree(dirfd(d), nm) < 0) bad = 1;
  }
  closedir(d);
  if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT) return -1;
  return bad ? -1 : 0;
}

char *read_fd(int fd, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) die_oom();
    if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    if (!buf) die_oom();
    ssize_t k = read(fd, buf + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      int e = errno;
      free(buf);
      errno = e;
      return NULL;
    }
    if (k == 0) break;
    n += (size_t)k;
  }
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

char *read_file_beneath(int at, const char *p) {
  int fd = open_beneath(at, p, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return NULL;
  struct stat st;
  char *buf = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read_fd(fd, NULL) : NULL;
  close(fd);
  return buf;
}
