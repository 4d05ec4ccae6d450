/*
 * director-tmpfs-size: resizes tmpfs mounts of a running container (Director's warm pool fits a
 * pooled sandbox's `disk` limit with it; see docs/decisions.md, "Fitting the pool").
 *
 *   director-tmpfs-size PID MNTNS PATH SIZE_BYTES NOEXEC(0|1) [PATH SIZE_BYTES NOEXEC ...]
 *   director-tmpfs-size --serve
 *
 * Joins the mount namespace of PID (the container's init, as seen from the host) and remounts
 * each PATH with `size=SIZE_BYTES`. A remount replaces the mount's flags, so the ones Director
 * gives every writable tmpfs (nosuid, nodev, and noexec when execution is not allowed) are
 * passed again; the atime flags are kept by the kernel. Nothing of the container is executed:
 * this program runs from the host's filesystem, only its mount(2) calls happen in the
 * container's namespace. Run as root by the engine driver (local engine only), before the
 * sandbox is handed to anyone. Exit status 0: every mount resized; 1: one failed (stderr says
 * which); 2: bad arguments.
 *
 * The container is not trusted, and neither is the pid:
 * - MNTNS is the inode of the mount namespace the host read from /proc/PID/ns/mnt while it knew
 *   PID to be the container's; the namespace is opened once, checked to be that one (a pid
 *   reused since by another process has another namespace), and that same open file is joined.
 * - A PID in the helper's own mount namespace, or in that of the host's init, is refused: the
 *   helper never remounts anything of the host.
 * - PATH is resolved one component at a time from the container's root with O_NOFOLLOW: a
 *   symlink anywhere in it (the container controls its filesystem) is refused, never followed.
 * - What PATH opened must be a tmpfs (statfs) and the root of a mount whose mount point is PATH
 *   (its mount id, looked up in the namespace's mount table): remounting a directory inside some
 *   other mount is refused.
 * - The remount goes through that open file (/proc/self/fd/N of the host's /proc), so what was
 *   checked is what is remounted, whatever the container renames meanwhile.
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
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define MAX_ARGS (2 + 3 * 16)

/* What the helper holds from the start, in the host's mount namespace. */
struct host {
  int home;             /* its own mount namespace */
  int proc;             /* the host's /proc (a directory fd): /proc/PID and /proc/self/... */
  struct stat home_ns;  /* the namespace of `home` */
  struct stat init_ns;  /* the namespace of the host's init (PID 1 of this /proc) */
  int have_init;
};

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

static int digits(const char *s) { return *s && strspn(s, "0123456789") == strlen(s); }

/* Checks `PID MNTNS (PATH SIZE NOEXEC)+`; 0 when valid, else writes why into err. */
static int check(int n, char **a, long *pid, unsigned long long *ns, char *err, size_t errlen) {
  if (n < 5 || (n - 2) % 3 != 0) {
    snprintf(err, errlen, "usage: PID MNTNS PATH SIZE_BYTES NOEXEC [PATH SIZE_BYTES NOEXEC ...]");
    return 2;
  }
  char *end;
  errno = 0;
  *pid = digits(a[0]) ? strtol(a[0], &end, 10) : 0;
  if (errno || *pid <= 1 || *pid > 1L << 22) {
    snprintf(err, errlen, "bad pid %.32s", a[0]);
    return 2;
  }
  errno = 0;
  *ns = digits(a[1]) ? strtoull(a[1], &end, 10) : 0;
  if (errno || *ns == 0) {
    snprintf(err, errlen, "bad mount namespace %.32s", a[1]);
    return 2;
  }
  for (int i = 2; i < n; i += 3) {
    errno = 0;
    unsigned long long size = digits(a[i + 1]) ? strtoull(a[i + 1], &end, 10) : 0;
    if (!valid_path(a[i]) || errno || size == 0 || (strcmp(a[i + 2], "0") && strcmp(a[i + 2], "1"))) {
      snprintf(err, errlen, "bad mount %.260s %.32s %.4s", a[i], a[i + 1], a[i + 2]);
      return 2;
    }
  }
  return 0;
}

/*
 * Opens `path` (absolute, validated) from the current root one component at a time, never
 * following a symlink: O_PATH, so nothing of the container is read or triggered. -1 with err set.
 */
static int open_nofollow(const char *path, char *err, size_t errlen) {
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "open /: %s", strerror(errno));
    return -1;
  }
  char comp[257];
  for (const char *p = path + 1; *p;) {
    size_t k = strcspn(p, "/");
    memcpy(comp, p, k);
    comp[k] = 0;
    int next = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    if (next < 0) {
      if (e == ELOOP || e == ENOTDIR) snprintf(err, errlen, "%.260s: a symlink or not a directory in the path (refused)", path);
      else snprintf(err, errlen, "%.260s: %s", path, strerror(e));
      return -1;
    }
    fd = next;
    p += k + (p[k] == '/');
  }
  return fd;
}

/* The mount id of open file `fd` (from the host's /proc/self/fdinfo); -1 when unknown. */
static long mount_id_of(const struct host *h, int fd) {
  char name[64], buf[1024];
  snprintf(name, sizeof name, "self/fdinfo/%d", fd);
  int f = openat(h->proc, name, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  ssize_t n = read(f, buf, sizeof buf - 1);
  close(f);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *m = strstr(buf, "\nmnt_id:");
  return m ? strtol(m + 8, NULL, 10) : -1;
}

/*
 * True when the mount table of the current mount namespace (read through the host's /proc, as the
 * helper sees it: mount points relative to its root, the container's) has mount `id` as a tmpfs
 * mounted exactly at `path`.
 */
static int tmpfs_mount_at(const struct host *h, long id, const char *path) {
  int f = openat(h->proc, "self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (f < 0) return 0;
  FILE *in = fdopen(f, "r");
  if (!in) return close(f), 0;
  char *line = NULL;
  size_t cap = 0;
  int found = 0;
  while (!found && getline(&line, &cap, in) > 0) {
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
    char *save = NULL, *f1 = strtok_r(line, " ", &save);
    if (!f1 || strtol(f1, NULL, 10) != id) continue;
    char *mp = NULL;
    for (int i = 1; i <= 4; i++) mp = strtok_r(NULL, " ", &save);
    char *t;
    while ((t = strtok_r(NULL, " ", &save)) && strcmp(t, "-")) {}
    char *fstype = t ? strtok_r(NULL, " ", &save) : NULL;
    found = mp && fstype && !strcmp(mp, path) && !strcmp(fstype, "tmpfs") ? 1 : -1;
  }
  free(line);
  fclose(in);
  return found == 1;
}

/* Remounts each (PATH SIZE NOEXEC) of a[2..n) in the current mount namespace (the container's). */
static int remount(const struct host *h, int n, char **a, char *err, size_t errlen) {
  for (int i = 2; i < n; i += 3) {
    int fd = open_nofollow(a[i], err, errlen);
    if (fd < 0) return 1;
    struct statfs sf;
    long id = mount_id_of(h, fd);
    if (fstatfs(fd, &sf) != 0 || sf.f_type != TMPFS_MAGIC || id < 0 || !tmpfs_mount_at(h, id, a[i])) {
      close(fd);
      snprintf(err, errlen, "%.260s is not a tmpfs mount point (refused)", a[i]);
      return 1;
    }
    char opts[64], target[64];
    /* The parsed value, not the argument's text: leading zeros past the buffer would cut it to
     * "size=0", which tmpfs takes as no limit at all. */
    snprintf(opts, sizeof opts, "size=%llu", strtoull(a[i + 1], NULL, 10));
    /* Relative to the host's /proc (the working directory): the very mount checked above. */
    snprintf(target, sizeof target, "self/fd/%d", fd);
    unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (a[i + 2][0] == '1' ? MS_NOEXEC : 0);
    int rc = fchdir(h->proc) == 0 ? mount("tmpfs", target, "tmpfs", flags, opts) : -1;
    int e = errno;
    close(fd);
    if (rc != 0) {
      snprintf(err, errlen, "remount %.260s: %s", a[i], strerror(e));
      return 1;
    }
  }
  return 0;
}

static int same_ns(const struct stat *x, const struct stat *y) { return x->st_dev == y->st_dev && x->st_ino == y->st_ino; }

/*
 * One request: checks PID's mount namespace, joins it, remounts, and returns to the helper's own
 * namespace. 0 done; 1 refused or failed (err says why); -1 the helper could not return (fatal).
 */
static int handle(const struct host *h, int n, char **a, char *err, size_t errlen) {
  long pid;
  unsigned long long want;
  int rc = check(n, a, &pid, &want, err, errlen);
  if (rc) return rc;
  char ns[64];
  snprintf(ns, sizeof ns, "%ld/ns/mnt", pid);
  int fd = openat(h->proc, ns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "open /proc/%s: %s", ns, strerror(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, errlen, "stat /proc/%s: %s", ns, strerror(errno));
    close(fd);
    return 1;
  }
  if ((unsigned long long)st.st_ino != want) {
    snprintf(err, errlen, "pid %ld is not in mount namespace %llu (its process changed?): refused", pid, want);
    close(fd);
    return 1;
  }
  if (same_ns(&st, &h->home_ns) || (h->have_init && same_ns(&st, &h->init_ns))) {
    snprintf(err, errlen, "pid %ld is in the host's mount namespace: refused", pid);
    close(fd);
    return 1;
  }
  if (setns(fd, CLONE_NEWNS) != 0) {
    snprintf(err, errlen, "setns %ld: %s", pid, strerror(errno));
    close(fd);
    return 1;
  }
  close(fd);
  rc = remount(h, n, a, err, errlen);
  if (setns(h->home, CLONE_NEWNS) != 0) {
    snprintf(err, errlen, "cannot return to its own mount namespace: %s", strerror(errno));
    return -1;
  }
  return rc;
}

static int host_open(struct host *h) {
  h->home = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  h->proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (h->home < 0 || h->proc < 0 || fstat(h->home, &h->home_ns) != 0) {
    fprintf(stderr, "director-tmpfs-size: open its own mount namespace and /proc: %s\n", strerror(errno));
    return -1;
  }
  struct statfs sf;
  if (fstatfs(h->proc, &sf) != 0 || sf.f_type != PROC_SUPER_MAGIC) {
    fputs("director-tmpfs-size: /proc is not procfs\n", stderr);
    return -1;
  }
  int init = openat(h->proc, "1/ns/mnt", O_RDONLY | O_CLOEXEC);
  h->have_init = init >= 0 && fstat(init, &h->init_ns) == 0;
  if (init >= 0) close(init);
  return 0;
}

static int serve(const struct host *h) {
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
    int rc = n < 0 ? (snprintf(err, sizeof err, "too many mounts"), 2) : handle(h, n, a, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "director-tmpfs-size: %s\n", err);
      return 1;
    }
    if (rc == 0) printf("ok\n");
    else printf("err %s\n", err);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  struct host h;
  if (host_open(&h) < 0) return 1;
  if (argc == 2 && strcmp(argv[1], "--serve") == 0) return serve(&h);
  if (argc - 1 > MAX_ARGS) {
    fputs("director-tmpfs-size: too many mounts\n", stderr);
    return 2;
  }
  char err[512];
  int rc = handle(&h, argc - 1, argv + 1, err, sizeof err);
  if (rc != 0) fprintf(stderr, "director-tmpfs-size: %s\n", err);
  return rc < 0 ? 1 : rc;
}
