/*
 * director-agent tree capture MOUNT MARKER [SECONDS]
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
 * Exit statuses: 0 done, 2 usage, 3 cannot enter MOUNT, 4 listing failed, 123 some path not
 * read, 1 other failure.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAGE_PREFIX ".director-restore-"
#define OUT_BUF (256u << 10)
#define MAX_NAME 4096

/* --- buffered stdout ------------------------------------------------------------------- */

static unsigned char out_buf[OUT_BUF];
static size_t out_len;

static void out_flush(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t n = write(1, out_buf + off, out_len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(1); /* the reader is gone */
    off += (size_t)n;
  }
  out_len = 0;
}

static void out_put(const void *p, size_t n) {
  const unsigned char *s = p;
  while (n) {
    if (out_len == OUT_BUF) out_flush();
    size_t k = OUT_BUF - out_len < n ? OUT_BUF - out_len : n;
    memcpy(out_buf + out_len, s, k);
    out_len += k, s += k, n -= k;
  }
}

static void out_str(const char *s) { out_put(s, strlen(s)); }

/* --- listing ------------------------------------------------------------------------------ */

struct entry {
  char *name;
  struct stat st;
};

static int list_failed;
static dev_t root_dev;

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
 * subdirectories are entered, so the depth of the tree never costs file descriptors.
 */
static void walk(int rootfd, char *path, size_t len, const struct stat *self) {
  int fd = openat(rootfd, len ? path : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
    if (S_ISDIR(es[i].st.st_mode) && es[i].st.st_dev == root_dev) walk(rootfd, path, at + k, &es[i].st);
    path[len] = 0;
    free(es[i].name);
  }
  free(es);
}

static int list(int rootfd, const char *seconds) {
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

/* --- tar ----------------------------------------------------------------------------------- */

static void octal(char *field, size_t width, unsigned long long v) {
  /* width-1 digits and a NUL; a value too large takes the base-256 form (GNU, read by tar-stream). */
  unsigned long long max = 1;
  for (size_t i = 0; i < width - 1 && max < (1ull << 62); i++) max *= 8;
  if (v < max) {
    field[width - 1] = 0;
    for (size_t i = width - 1; i > 0; i--, v >>= 3) field[i - 1] = (char)('0' + (v & 7));
    return;
  }
  memset(field, 0, width);
  field[0] = (char)0x80;
  for (size_t i = width - 1; i > 0 && v; i--, v >>= 8) field[i] = (char)(v & 0xff);
}

static void header(const char *name, const char *link, char type, unsigned mode, unsigned long long size, long long mtime,
                   const struct stat *st) {
  char h[512];
  memset(h, 0, sizeof h);
  size_t nl = strlen(name);
  memcpy(h, name, nl < 100 ? nl : 99);
  octal(h + 100, 8, mode & 07777);
  octal(h + 108, 8, st->st_uid & 07777777);
  octal(h + 116, 8, st->st_gid & 07777777);
  octal(h + 124, 12, size);
  octal(h + 136, 12, mtime < 0 ? 0 : (unsigned long long)mtime);
  memset(h + 148, ' ', 8);
  h[156] = type;
  if (link) {
    size_t ll = strlen(link);
    memcpy(h + 157, link, ll < 100 ? ll : 99);
  }
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof h; i++) sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  out_put(h, sizeof h);
}

static const char zeros[512];

static void pad(unsigned long long size) {
  if (size % 512) out_put(zeros, 512 - (size_t)(size % 512));
}

/* A pax record "LEN key=value\n" (LEN counts the whole record, its own digits included). */
static size_t pax_record(char *dst, const char *key, const char *value) {
  size_t body = 1 + strlen(key) + 1 + strlen(value) + 1, total = body + 1;
  while (total != body + (size_t)snprintf(NULL, 0, "%zu", total)) total = body + (size_t)snprintf(NULL, 0, "%zu", total);
  return (size_t)sprintf(dst, "%zu %s=%s\n", total, key, value);
}

/* Entry `name` (and `link`): a pax header first when either does not fit the ustar fields. */
static void entry_header(const char *name, const char *link, char type, unsigned mode, unsigned long long size, long long mtime,
                         const struct stat *st) {
  int long_name = strlen(name) >= 100, long_link = link && strlen(link) >= 100;
  if (long_name || long_link) {
    static char pax[2 * (MAX_NAME + 64)];
    size_t n = 0;
    if (long_name) n += pax_record(pax + n, "path", name);
    if (long_link) n += pax_record(pax + n, "linkpath", link);
    header("././@PaxHeader", NULL, 'x', 0644, n, mtime, st);
    out_put(pax, n);
    pad(n);
  }
  header(name, link, type, mode, size, mtime, st);
}

struct seen {
  dev_t dev;
  ino_t ino;
  char *name;
};

static struct seen *seen;
static size_t nseen, capseen;

static const char *seen_before(const struct stat *st) {
  for (size_t i = 0; i < nseen; i++)
    if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino) return seen[i].name;
  return NULL;
}

static void remember(const struct stat *st, const char *name) {
  if (nseen == capseen) {
    capseen = capseen ? capseen * 2 : 16;
    struct seen *grown = realloc(seen, capseen * sizeof *seen);
    if (!grown) return; /* only costs a copy instead of a link */
    seen = grown;
  }
  char *copy = strdup(name);
  if (!copy) return;
  seen[nseen++] = (struct seen){st->st_dev, st->st_ino, copy};
}

static int missing, shrank;

static void skip(const char *path, const char *why, int err) {
  if (err) fprintf(stderr, "director-tree: ./%s: %s: %s\n", path, why, strerror(err));
  else fprintf(stderr, "director-tree: ./%s: %s\n", path, why);
  missing = 1;
}

static void put_file(int rootfd, const char *path) {
  int fd = openat(rootfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) { /* a symlink now */
      struct stat st;
      if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        char target[MAX_NAME + 1];
        ssize_t n = readlinkat(rootfd, path, target, MAX_NAME);
        if (n < 0) return skip(path, "cannot read link", errno);
        target[n] = 0;
        entry_header(path, target, '2', st.st_mode, 0, st.st_mtim.tv_sec, &st);
        return;
      }
    }
    return skip(path, "cannot open", errno);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return skip(path, "cannot stat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return skip(path, "not a regular file any more", 0);
  }
  if (st.st_nlink > 1) {
    const char *first = seen_before(&st);
    if (first) {
      close(fd);
      entry_header(path, first, '1', st.st_mode, 0, st.st_mtim.tv_sec, &st);
      return;
    }
  }
  /* Read the first block before the header: an unreadable file (EISDIR, EIO) is then left out whole. */
  unsigned long long size = (unsigned long long)st.st_size, done = 0;
  static unsigned char chunk[OUT_BUF];
  ssize_t got = size ? read(fd, chunk, size < sizeof chunk ? (size_t)size : sizeof chunk) : 0;
  if (got < 0) {
    int e = errno;
    close(fd);
    return skip(path, "cannot read", e);
  }
  entry_header(path, NULL, '0', st.st_mode, size, st.st_mtim.tv_sec, &st);
  while (got > 0) {
    out_put(chunk, (size_t)got);
    done += (unsigned long long)got;
    if (done >= size) break;
    do got = read(fd, chunk, size - done < sizeof chunk ? (size_t)(size - done) : sizeof chunk);
    while (got < 0 && errno == EINTR);
  }
  close(fd);
  if (done < size) {
    fprintf(stderr, "director-tree: ./%s: file shrank while read\n", path);
    shrank = 1;
    while (done < size) {
      size_t k = size - done < sizeof zeros ? (size_t)(size - done) : sizeof zeros;
      out_put(zeros, k);
      done += k;
    }
  }
  pad(size);
  if (st.st_nlink > 1) remember(&st, path);
}

static void put_symlink(int rootfd, const char *path, const struct stat *st) {
  char target[MAX_NAME + 1];
  ssize_t n = readlinkat(rootfd, path, target, MAX_NAME);
  if (n < 0) return skip(path, "cannot read link", errno);
  target[n] = 0;
  entry_header(path, target, '2', st->st_mode, 0, st->st_mtim.tv_sec, st);
}

/* Reads stdin to its end (the host sends the paths and closes it). */
static char *read_all(size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *p = malloc(cap);
  if (!p) return NULL;
  for (;;) {
    if (n == cap) {
      char *grown = realloc(p, cap *= 2);
      if (!grown) return free(p), NULL;
      p = grown;
    }
    ssize_t k = read(0, p + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return free(p), NULL;
    if (k == 0) break;
    n += (size_t)k;
  }
  *len = n;
  return p;
}

static int capture(int rootfd) {
  size_t len;
  char *in = read_all(&len);
  if (!in) {
    perror("director-tree: reading the paths");
    return 1;
  }
  if (len < 2 || in[0] != '1' || in[1] != '\n') return 0; /* `0`, or nothing: nothing to read */
  size_t at = 2;
  while (at < len) {
    char *p = in + at;
    char *end = memchr(p, 0, len - at);
    if (!end) break; /* an unterminated tail is not a path */
    at = (size_t)(end - in) + 1;
    if (p[0] != '.' || p[1] != '/' || !p[2]) {
      fprintf(stderr, "director-tree: not a ./path: %.200s\n", p);
      return 1;
    }
    const char *path = p + 2;
    struct stat st;
    if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      skip(path, "cannot stat", errno);
      continue;
    }
    if (S_ISLNK(st.st_mode)) put_symlink(rootfd, path, &st);
    else if (S_ISREG(st.st_mode)) put_file(rootfd, path);
    else skip(path, "not a regular file or symlink any more", 0);
  }
  out_put(zeros, 512);
  out_put(zeros, 512);
  out_flush();
  free(in);
  return shrank ? 1 : missing ? 123 : 0;
}

int tree_main(int argc, char **argv) {
  if (argc < 4) {
    fputs("usage: director-agent tree capture MOUNT MARKER [SECONDS] | tree list MOUNT [SECONDS]\n", stderr);
    return 2;
  }
  const char *mode = argv[2], *mount = argv[3];
  int cap = !strcmp(mode, "capture");
  if (!cap && strcmp(mode, "list")) {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  if (cap && argc < 5) return 2;
  const char *seconds = cap ? (argc > 5 ? argv[5] : NULL) : (argc > 4 ? argv[4] : NULL);
  if (seconds && (!*seconds || strspn(seconds, "0123456789") != strlen(seconds))) {
    fprintf(stderr, "director-tree: not a time: %s\n", seconds);
    return 2;
  }
  int rootfd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0 || fchdir(rootfd) < 0) {
    fprintf(stderr, "cannot enter %s\n", mount);
    return 3;
  }
  if (list(rootfd, seconds) < 0) {
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
  return capture(rootfd);
}
