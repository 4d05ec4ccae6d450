/*
 * director-agent tree capture|capture-all MOUNT MARKER [SECONDS]
 * director-agent tree restore MOUNT STAGE MARKER COMMIT
 * director-agent tree list MOUNT [SECONDS]
 *
 * The checkpoint reader of runtime/sandbox/mount-sync.ts in one process, run through the
 * ordinary exec path as the sandbox user (no privilege of its own: it sees and reads exactly
 * what the sandbox user can). It does what runtime/sandbox/tree-script.ts does with sh, find,
 * stat, xargs and tar, with the same protocol and output, so the host's strict parsers
 * (tree-listing.ts, tar-guard.ts) and the script fallback stay as they are:
 *
 * - `T <seconds>` (SECONDS, or the clock), then one line per entry of MOUNT, as
 *   `find . -xdev \( -path './.director-restore-*' -prune \) -o -exec stat -c '%f %i %h %s %Y %Z %n' {} +`
 *   prints it: the root `.` first, every directory before what it holds, lstat's fields, the
 *   name as it is (a name with a line break breaks the line: the host refuses the listing, as
 *   it does the script's). Entries on another filesystem are listed, not entered (-xdev); an
 *   entry that vanished between readdir and lstat is left out; any other error is reported on
 *   stderr and fails the listing (exit 4, no marker), as find's does.
 * - `capture` then prints MARKER and reads one line on stdin: `0` ends; `1` is followed by
 *   NUL-separated `./paths`, of which it writes one tar (ustar; a pax record for a name or
 *   link target too long for the header) to stdout: regular files with their content, symlinks
 *   as records, a file whose (device, inode) was already written as a hard link to it (as tar
 *   does). A path gone, unreadable or no longer a file or symlink is left out and reported on
 *   stderr; the exit status is then 123 (what `xargs tar` answers). A file that shrank while
 *   read is padded to the size in its header and fails the read (exit 1), as it makes no
 *   consistent content.
 *
 * - `capture-all` is `capture` when the host wants everything (a mount's first capture): after
 *   MARKER it writes, without reading stdin, the tar of every regular file and symlink the
 *   listing printed, in the listing's order, as `capture` writes it for the paths `1` names, with
 *   the same exit statuses. The host then waits for no round trip before the content starts.
 *   A name that is not well-formed UTF-8 is listed and not written (see utf8_ok).
 *   An agent older than it answers `unknown mode` (exit 2, nothing printed), as one older than
 *   `tree` does: the host asks again with `capture`.
 *
 * - `restore` is the script's restore (see `restore` below), with its output and exit statuses.
 *
 * Exit statuses: 0 done, 2 usage, 3 cannot enter MOUNT, 4 listing failed, 123 some path not
 * read, 10-13 as the script's restore, 1 other failure. Paths of more than PATH_MAX bytes
 * (with the stage prefix, on restore) are not handled: they fail the listing or the restore.
 *
 * Hostile input (tree.h): below MOUNT nothing is opened through a symlink (every path is
 * resolved from MOUNT's fd refusing a symlink in any component: open_parent); a capture path,
 * an archive entry or a plan line that is absolute, has a `.`, `..` or empty component is
 * refused; the archive is parsed with every length bounded and checked (tree-restore.c). MOUNT
 * itself is Director's path (where the engine mounted the tmpfs, resolved as the engine
 * resolved it) and is opened as given.
 *
 * This file: the entry point, the buffered stdout and the listing; tree-capture.c writes the tar,
 * tree-restore.c reads one and swaps it in, tree-path.c holds the path rules.
 */
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- buffered stdout ------------------------------------------------------------------- */

static unsigned char out_buf[OUT_BUF];
static size_t out_len;

void out_flush(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t n = write(1, out_buf + off, out_len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(1); /* the reader is gone */
    off += (size_t)n;
  }
  out_len = 0;
}

void out_put(const void *p, size_t n) {
  const unsigned char *s = p;
  while (n) {
    if (out_len == OUT_BUF) out_flush();
    size_t k = OUT_BUF - out_len < n ? OUT_BUF - out_len : n;
    memcpy(out_buf + out_len, s, k);
    out_len += k, s += k, n -= k;
  }
}

void out_str(const char *s) { out_put(s, strlen(s)); }

/* --- listing ------------------------------------------------------------------------------ */

struct entry {
  char *name;
  struct stat st;
};

static int list_failed;
static dev_t root_dev;

/* With `capture-all`: the regular files and symlinks listed, as `./path` NUL-terminated, in listing order. */
static struct buf_list {
  char *p;
  size_t len, cap;
  int on;
} listed;

/*
 * Whether `s` is well-formed UTF-8 as the host's decoder takes it (no overlong form, surrogate or
 * value past U+10FFFF). The host reads names as UTF-8: a name that is not would come back to it
 * changed, so `capture-all` leaves it out, as `capture` cannot find it by the host's version of
 * it: both report it missing.
 */
static int utf8_ok(const unsigned char *s) {
  while (*s) {
    unsigned c = *s++, n, min;
    if (c < 0x80) continue;
    if ((c & 0xe0) == 0xc0) n = 1, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 2, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 3, min = 0x10000, c &= 0x07;
    else return 0;
    for (; n; n--, s++) {
      if ((*s & 0xc0) != 0x80) return 0; /* also the NUL at the end */
      c = (c << 6) | (*s & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  }
  return 1;
}

static void remember_listed(const char *path) {
  size_t k = strlen(path) + 3;
  if (listed.len + k > listed.cap) {
    size_t cap = listed.cap ? listed.cap : 16384;
    while (listed.len + k > cap) cap *= 2;
    char *grown = realloc(listed.p, cap);
    if (!grown) die_oom();
    listed.p = grown, listed.cap = cap;
  }
  listed.p[listed.len++] = '.';
  listed.p[listed.len++] = '/';
  memcpy(listed.p + listed.len, path, k - 2);
  listed.len += k - 2;
}

static void warn_path(const char *what, const char *path, int err) {
  fprintf(stderr, "director-tree: %s ./%s: %s\n", what, path, strerror(err));
}

/* One listing line: `%f %i %h %s %Y %Z %n` of stat(1), the name relative to the mount as `.` or `./x`. */
static void print_entry(const char *path, const struct stat *st) {
  char line[160];
  int n = snprintf(line, sizeof line, "%lx %llu %llu %lld %lld %lld ", (unsigned long)st->st_mode, (unsigned long long)st->st_ino,
                   (unsigned long long)st->st_nlink, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
                   (long long)st->st_ctim.tv_sec);
  out_put(line, (size_t)n);
  if (*path) {
    out_str("./");
    out_str(path);
  } else out_str(".");
  out_put("\n", 1);
}

/*
 * Lists what directory `path` (relative to rootfd, '' for the root) holds, depth first. The
 * directory's entries are read and lstat'ed while it is open, then it is closed before its
 * subdirectories are entered, so the depth of the tree never costs file descriptors (a
 * profile's RLIMIT_NOFILE can be small); each is reopened from the root (open_beneath).
 */
static void walk(int rootfd, char *path, size_t len, const struct stat *self) {
  /* No symlink followed in any component: a directory replaced on the way by a symlink is not entered. */
  int fd = open_beneath(rootfd, len ? path : ".", O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    /* Gone or replaced since it was listed: nothing in it to list. */
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return;
    warn_path("cannot open", path, errno);
    list_failed = 1;
    return;
  }
  struct stat now;
  if (fstat(fd, &now) < 0 || now.st_dev != self->st_dev || now.st_ino != self->st_ino) {
    close(fd);
    return; /* replaced since it was listed */
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    warn_path("cannot read", path, errno);
    list_failed = 1;
    return;
  }
  struct entry *es = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) {
        warn_path("cannot read", path, errno);
        list_failed = 1;
      }
      break;
    }
    const char *nm = de->d_name;
    if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2]))) continue;
    if (!len && !strncmp(nm, STAGE_PREFIX, sizeof STAGE_PREFIX - 1)) continue; /* a restore's stage: never listed */
    struct stat st;
    if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) continue; /* vanished since readdir */
      fprintf(stderr, "director-tree: cannot stat ./%.1000s%s%.255s: %s\n", path, len ? "/" : "", nm, strerror(errno));
      list_failed = 1;
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 32;
      struct entry *grown = realloc(es, cap * sizeof *es);
      if (!grown) {
        fputs("director-tree: out of memory\n", stderr);
        exit(4);
      }
      es = grown;
    }
    es[n].name = strdup(nm);
    if (!es[n].name) {
      fputs("director-tree: out of memory\n", stderr);
      exit(4);
    }
    es[n++].st = st;
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) {
    size_t k = strlen(es[i].name);
    if (len + (len ? 1 : 0) + k > MAX_NAME) {
      fprintf(stderr, "director-tree: name too long under ./%.200s\n", path);
      list_failed = 1;
      free(es[i].name);
      continue;
    }
    size_t at = len;
    if (len) path[at++] = '/';
    memcpy(path + at, es[i].name, k + 1);
    print_entry(path, &es[i].st);
    if (listed.on && (S_ISREG(es[i].st.st_mode) || S_ISLNK(es[i].st.st_mode)) && utf8_ok((const unsigned char *)path))
      remember_listed(path);
    if (S_ISDIR(es[i].st.st_mode) && es[i].st.st_dev == root_dev) walk(rootfd, path, at + k, &es[i].st);
    path[len] = 0;
    free(es[i].name);
  }
  free(es);
}

int tree_list(int rootfd, const char *seconds) {
  char t[32];
  if (seconds) {
    out_str("T ");
    out_str(seconds);
    out_put("\n", 1);
  } else {
    snprintf(t, sizeof t, "T %lld\n", (long long)time(NULL));
    out_str(t);
  }
  struct stat st;
  if (fstat(rootfd, &st) < 0) {
    perror("director-tree: stat .");
    return -1;
  }
  root_dev = st.st_dev;
  print_entry("", &st);
  static char path[MAX_NAME + 1];
  path[0] = 0;
  walk(rootfd, path, 0, &st);
  return list_failed ? -1 : 0;
}

int tree_main(int argc, char **argv) {
  if (argc < 4) {
    fputs("usage: director-agent tree capture|capture-all MOUNT MARKER [SECONDS] | tree restore MOUNT STAGE MARKER COMMIT | tree list MOUNT [SECONDS]\n", stderr);
    return 2;
  }
  const char *mode = argv[2], *mount = argv[3];
  if (getenv("DIRECTOR_TREE_WALK")) tree_walk_only();
  int all = !strcmp(mode, "capture-all"), cap = all || !strcmp(mode, "capture"), restore = !strcmp(mode, "restore");
  if (!cap && !restore && strcmp(mode, "list")) {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  if ((restore && argc < 7) || (cap && argc < 5)) return 2;
  const char *seconds = restore ? NULL : cap ? (argc > 5 ? argv[5] : NULL) : (argc > 4 ? argv[4] : NULL);
  if (seconds && (!*seconds || strspn(seconds, "0123456789") != strlen(seconds))) {
    fprintf(stderr, "director-tree: not a time: %s\n", seconds);
    return 2;
  }
  int rootfd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0 || fchdir(rootfd) < 0) {
    fprintf(stderr, "cannot enter %s\n", mount);
    return 3;
  }
  if (restore) return tree_restore(rootfd, argv[4], argv[5], !strcmp(argv[6], "1"));
  listed.on = all;
  if (tree_list(rootfd, seconds) < 0) {
    out_flush();
    return 4;
  }
  if (!cap) {
    out_flush();
    return 0;
  }
  out_str(argv[4]);
  out_put("\n", 1);
  out_flush();
  if (all) return tree_capture_paths(rootfd, listed.p ? listed.p : "", listed.len);
  return tree_capture(rootfd);
}
