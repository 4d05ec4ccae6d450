/*
 * director-agent tree capture MOUNT MARKER [SECONDS]
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
 * - `restore` is the script's restore (see `restore` below), with its output and exit statuses.
 *
 * Exit statuses: 0 done, 2 usage, 3 cannot enter MOUNT, 4 listing failed, 123 some path not
 * read, 10-13 as the script's restore, 1 other failure. Paths of more than PATH_MAX bytes
 * (with the stage prefix, on restore) are not handled: they fail the listing or the restore.
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

static int restore(int rootfd, const char *stage, const char *marker, int commit);

int tree_main(int argc, char **argv) {
  if (argc < 4) {
    fputs("usage: director-agent tree capture MOUNT MARKER [SECONDS] | tree restore MOUNT STAGE MARKER COMMIT | tree list MOUNT [SECONDS]\n", stderr);
    return 2;
  }
  const char *mode = argv[2], *mount = argv[3];
  int cap = !strcmp(mode, "capture");
  if (!strcmp(mode, "restore")) {
    if (argc < 7) return 2;
    int rootfd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0 || fchdir(rootfd) < 0) {
      fprintf(stderr, "cannot enter %s\n", mount);
      return 3;
    }
    return restore(rootfd, argv[4], argv[5], !strcmp(argv[6], "1"));
  }
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

/* --- restore ------------------------------------------------------------------------------- */

static void die_oom(void) {
  fputs("director-tree: out of memory\n", stderr);
  exit(1);
}

/* Removes `name` (relative to dirfd) and everything under it; a directory it cannot enter or empty is made u+rwx first. */
static int rm_tree(int at, const char *name) {
  if (unlinkat(at, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES && fchmodat(at, name, 0700, 0) == 0)
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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

static int exists_at(int rootfd, const char *path) {
  struct stat st;
  return fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* stdin, read in blocks. */
static unsigned char in_buf[OUT_BUF];
static size_t in_off, in_len;
static int in_eof;

static int in_fill(void) {
  while (in_off == in_len) {
    if (in_eof) return -1;
    ssize_t k = read(0, in_buf, sizeof in_buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      in_eof = 1;
      return -1;
    }
    in_off = 0, in_len = (size_t)k;
  }
  return 0;
}

/* Reads n bytes into dst (skips them when dst is NULL); -1 at the end of input. */
static int in_read(void *dst, size_t n) {
  unsigned char *p = dst;
  while (n) {
    if (in_fill() < 0) return -1;
    size_t k = in_len - in_off < n ? in_len - in_off : n;
    if (p) memcpy(p, in_buf + in_off, k), p += k;
    in_off += k, n -= k;
  }
  return 0;
}

static unsigned long long parse_num(const unsigned char *f, size_t width) {
  unsigned long long v = 0;
  if (f[0] & 0x80) {
    for (size_t i = 1; i < width; i++) v = (v << 8) | f[i];
    return v;
  }
  size_t i = 0;
  while (i < width && (f[i] == ' ' || f[i] == 0)) i++;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) v = v * 8 + (unsigned)(f[i] - '0');
  return v;
}

struct dir_time {
  char *name;
  long long mtime;
};

/* A name the restore may write: the stage directory or under it, no `..`, no empty component. */
static int in_stage(const char *name, const char *stage) {
  size_t n = strlen(stage);
  if (strncmp(name, stage, n) || (name[n] && name[n] != '/')) return 0;
  for (const char *p = name; *p;) {
    const char *e = strchr(p, '/');
    size_t k = e ? (size_t)(e - p) : strlen(p);
    if (k == 0 || (k == 2 && p[0] == '.' && p[1] == '.') || (k == 1 && p[0] == '.')) return 0;
    p += k + (e ? 1 : 0);
  }
  return 1;
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    p += k, n -= (size_t)k;
  }
  return 0;
}

/*
 * Extracts the tar on stdin (what the host's packTree writes: ustar with a prefix field, pax
 * records for other names) into the mount, only under `stage`. Files get the header's mode
 * (not masked) and mtime, directories their mtime once filled. -1 after a message on stderr.
 */
static int extract(int rootfd, const char *stage) {
  static char name[MAX_NAME * 2 + 8], link[MAX_NAME * 2 + 8];
  char *pax_path = NULL, *pax_link = NULL;
  struct dir_time *dirs = NULL;
  size_t ndirs = 0, capdirs = 0;
  int rc = -1;
  unsigned char h[512];
  for (;;) {
    if (in_read(h, 512) < 0) {
      fputs("director-tree: the archive ended early\n", stderr);
      goto out;
    }
    int zero = 1;
    for (size_t i = 0; i < 512 && zero; i++) zero = !h[i];
    if (zero) break;
    unsigned sum = 0, want = (unsigned)parse_num(h + 148, 8);
    for (size_t i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? ' ' : h[i];
    if (sum != want) {
      fputs("director-tree: a malformed archive header\n", stderr);
      goto out;
    }
    char type = (char)h[156];
    unsigned long long size = parse_num(h + 124, 12);
    unsigned long long padded = (size + 511) / 512 * 512;
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      if (size > 64 * 1024) {
        fputs("director-tree: an oversized archive record\n", stderr);
        goto out;
      }
      char *rec = malloc(padded + 1);
      if (!rec) die_oom();
      if (in_read(rec, padded) < 0) {
        free(rec);
        fputs("director-tree: the archive ended early\n", stderr);
        goto out;
      }
      rec[size] = 0;
      if (type == 'L' || type == 'K') {
        char **slot = type == 'L' ? &pax_path : &pax_link;
        free(*slot);
        *slot = strndup(rec, size);
      } else if (type == 'x') {
        for (size_t at = 0; at < size;) {
          char *end;
          unsigned long len = strtoul(rec + at, &end, 10);
          if (!len || at + len > size || *end != ' ') break;
          char *kv = end + 1, *eq = memchr(kv, '=', (size_t)(rec + at + len - kv));
          if (eq) {
            size_t vlen = (size_t)(rec + at + len - 1 - (eq + 1));
            if (!strncmp(kv, "path=", 5)) free(pax_path), pax_path = strndup(eq + 1, vlen);
            else if (!strncmp(kv, "linkpath=", 9)) free(pax_link), pax_link = strndup(eq + 1, vlen);
          }
          at += len;
        }
      }
      free(rec);
      continue;
    }
    if (pax_path) snprintf(name, sizeof name, "%s", pax_path);
    else if (!memcmp(h + 257, "ustar", 5) && h[345])
      snprintf(name, sizeof name, "%.155s/%.100s", (const char *)h + 345, (const char *)h);
    else snprintf(name, sizeof name, "%.100s", (const char *)h);
    if (pax_link) snprintf(link, sizeof link, "%s", pax_link);
    else snprintf(link, sizeof link, "%.100s", (const char *)h + 157);
    free(pax_path), free(pax_link);
    pax_path = pax_link = NULL;
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/') name[--nl] = 0;
    if (!in_stage(name, stage)) {
      fprintf(stderr, "director-tree: an archive entry outside the stage: %.200s\n", name);
      goto out;
    }
    unsigned mode = (unsigned)parse_num(h + 100, 8) & 07777;
    long long mtime = (long long)parse_num(h + 136, 12);
    if (type == '5') {
      if (mkdirat(rootfd, name, 0700) < 0 && !(errno == EEXIST && exists_at(rootfd, name))) {
        fprintf(stderr, "director-tree: ./%s: %s\n", name, strerror(errno));
        goto out;
      }
      if (fchmodat(rootfd, name, mode | 0700, 0) < 0) {
        fprintf(stderr, "director-tree: ./%s: %s\n", name, strerror(errno));
        goto out;
      }
      if (ndirs == capdirs) {
        capdirs = capdirs ? capdirs * 2 : 64;
        dirs = realloc(dirs, capdirs * sizeof *dirs);
        if (!dirs) die_oom();
      }
      dirs[ndirs].name = strdup(name);
      if (!dirs[ndirs].name) die_oom();
      dirs[ndirs++].mtime = mtime;
      if (in_read(NULL, padded) < 0) goto early;
    } else if (type == '2') {
      if (symlinkat(link, rootfd, name) < 0) {
        fprintf(stderr, "director-tree: ./%s: %s\n", name, strerror(errno));
        goto out;
      }
      struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};
      utimensat(rootfd, name, ts, AT_SYMLINK_NOFOLLOW);
      if (in_read(NULL, padded) < 0) goto early;
    } else if (type == '0' || type == 0 || type == '7') {
      int fd = openat(rootfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) {
        fprintf(stderr, "director-tree: ./%s: %s\n", name, strerror(errno));
        goto out;
      }
      unsigned long long left = size;
      while (left) {
        if (in_fill() < 0) {
          close(fd);
          goto early;
        }
        size_t k = in_len - in_off < left ? in_len - in_off : (size_t)left;
        if (write_all(fd, in_buf + in_off, k) < 0) {
          fprintf(stderr, "director-tree: ./%s: %s\n", name, strerror(errno));
          close(fd);
          goto out;
        }
        in_off += k, left -= k;
      }
      struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};
      if (fchmod(fd, mode & 0777) < 0 || futimens(fd, ts) < 0 || close(fd) < 0) {
        fprintf(stderr, "director-tree: ./%s: %s\n", name, strerror(errno));
        goto out;
      }
      if (in_read(NULL, padded - size) < 0) goto early;
    } else {
      fprintf(stderr, "director-tree: ./%s: unsupported archive entry type %d\n", name, type);
      goto out;
    }
  }
  /* Directories last, deepest first: filling them set their mtime. */
  for (size_t i = ndirs; i-- > 0;) {
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = dirs[i].mtime}};
    utimensat(rootfd, dirs[i].name, ts, 0);
  }
  /* Whatever follows the end blocks is read, so the sender never sees its pipe break. */
  while (in_read(NULL, 1) == 0) {}
  rc = 0;
  goto out;
early:
  fputs("director-tree: the archive ended early\n", stderr);
out:
  for (size_t i = 0; i < ndirs; i++) free(dirs[i].name);
  free(dirs);
  free(pax_path), free(pax_link);
  return rc;
}

/* One step of a swap, for undoing it: a rename (from, to) or a chmod (path, old mode). */
struct step {
  char *a, *b;
  unsigned old;
};

static struct step *steps;
static size_t nsteps, capsteps;

static void log_step(const char *a, const char *b, unsigned old) {
  if (nsteps == capsteps) {
    capsteps = capsteps ? capsteps * 2 : 64;
    steps = realloc(steps, capsteps * sizeof *steps);
    if (!steps) die_oom();
  }
  steps[nsteps].a = strdup(a);
  steps[nsteps].b = b ? strdup(b) : NULL;
  if (!steps[nsteps].a || (b && !steps[nsteps].b)) die_oom();
  steps[nsteps++].old = old;
}

/* "a/b" from a directory ("" for the mount) and a name. */
static void join(char *dst, size_t cap, const char *dir, const char *name) {
  snprintf(dst, cap, "%s%s%s", dir, *dir ? "/" : "", name);
}

/* A plan path (`.` or `./x`) as a path relative to the mount ("" or "x"). */
static const char *plan_path(const char *p) { return !strcmp(p, ".") ? "" : !strncmp(p, "./", 2) ? p + 2 : p; }

/*
 * The plan's swap (runtime/sandbox/tree-plan.ts planText), as the script's `swap` does it: per
 * directory, its `R` names moved aside to STAGE/o/DIR, then its `A` names moved in from
 * STAGE/t/DIR; then the `C` chmods. Every step done is logged; 'R', 'A' or 'C' on failure.
 */
static char swap(int rootfd, const char *stage, char *plan) {
  static char where[MAX_NAME + 512], src[sizeof where + 256], dst[sizeof where + 256];
  const char *dir = "";
  int ended = 0;
  for (char *line = plan, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    char op = line[0];
    const char *arg = line[1] == ' ' ? line + 2 : "";
    if (!ended && op == 'D') dir = plan_path(arg);
    else if (!ended && op == 'E') ended = 1;
    else if (!ended && (op == 'R' || op == 'A')) {
      join(where, sizeof where, dir, arg);
      if (op == 'R') {
        snprintf(src, sizeof src, "%s", where);
        snprintf(dst, sizeof dst, "%s/o%s%s", stage, *where ? "/" : "", where);
      } else {
        snprintf(src, sizeof src, "%s/t%s%s", stage, *where ? "/" : "", where);
        snprintf(dst, sizeof dst, "%s", where);
      }
      if (renameat(rootfd, src, rootfd, dst) < 0) {
        fprintf(stderr, "director-tree: moving ./%s to ./%s: %s\n", src, dst, strerror(errno));
        return op;
      }
      log_step(src, dst, 0);
    } else if (ended && op == 'C') {
      char *end;
      unsigned long mode = strtoul(arg, &end, 8), old = strtoul(end, &end, 8);
      const char *path = plan_path(*end == ' ' ? end + 1 : end);
      if (fchmodat(rootfd, *path ? path : ".", (mode_t)mode, 0) < 0) {
        fprintf(stderr, "director-tree: chmod ./%s: %s\n", path, strerror(errno));
        return 'C';
      }
      log_step(*path ? path : ".", NULL, (unsigned)old);
    }
  }
  return 0;
}

/* Undoes the logged steps, last first; -1 when one could not be undone. */
static int undo_steps(int rootfd) {
  int bad = 0;
  for (size_t i = nsteps; i-- > 0;) {
    struct step *s = &steps[i];
    int r = s->b ? renameat(rootfd, s->b, rootfd, s->a) : fchmodat(rootfd, s->a, s->old, 0);
    if (r < 0) {
      fprintf(stderr, "director-tree: undoing ./%s: %s\n", s->b ? s->b : s->a, strerror(errno));
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

static char *read_file_at(int rootfd, const char *path) {
  int fd = openat(rootfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *p = malloc(cap + 1);
  for (;;) {
    if (!p) die_oom();
    if (n == cap) p = realloc(p, (cap *= 2) + 1);
    if (!p) die_oom();
    ssize_t k = read(fd, p + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      free(p);
      close(fd);
      return NULL;
    }
    if (k == 0) break;
    n += (size_t)k;
  }
  close(fd);
  p[n] = 0;
  return p;
}

/*
 * `tree restore MOUNT STAGE MARKER COMMIT`: the script's `restore` in one process, with the same
 * output and exit statuses (see tree-script.ts): leftover stages removed, `T 0`, the listing and
 * MARKER; the archive on stdin extracted (only under STAGE), then swapped in by renames as
 * STAGE/plan says, every step undone if one fails. The stage keeps the script's layout, so the
 * script's `commit` and `undo` end an uncommitted restore either way.
 */
static int restore(int rootfd, const char *stage, const char *marker, int commit) {
  if (strncmp(stage, STAGE_PREFIX, sizeof STAGE_PREFIX - 1) || strchr(stage, '/') || strlen(stage) > sizeof STAGE_PREFIX + 32) {
    fprintf(stderr, "director-tree: not a stage name: %.200s\n", stage);
    return 2;
  }
  DIR *d = fdopendir(openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) {
    for (struct dirent *de; (de = readdir(d));)
      if (!strncmp(de->d_name, STAGE_PREFIX, sizeof STAGE_PREFIX - 1)) rm_tree(rootfd, de->d_name);
    closedir(d);
  }
  if (list(rootfd, "0") < 0) {
    out_flush();
    return 4;
  }
  out_str(marker);
  out_put("\n", 1);
  out_flush();
  if (exists_at(rootfd, stage)) {
    puts("FAIL stage");
    return 10;
  }
  char complete[sizeof STAGE_PREFIX + 64];
  snprintf(complete, sizeof complete, "%s/complete", stage);
  if (extract(rootfd, stage) < 0 || !exists_at(rootfd, complete)) {
    rm_tree(rootfd, stage);
    puts("FAIL stage");
    return 11;
  }
  char planfile[sizeof STAGE_PREFIX + 64];
  snprintf(planfile, sizeof planfile, "%s/plan", stage);
  char *plan = read_file_at(rootfd, planfile);
  char failed = plan ? swap(rootfd, stage, plan) : 'R';
  free(plan);
  if (!failed) {
    if (commit) rm_tree(rootfd, stage);
    puts("OK");
    return 0;
  }
  if (undo_steps(rootfd) == 0) {
    rm_tree(rootfd, stage);
    printf("REVERTED %c\n", failed);
    return 12;
  }
  printf("REVERT-FAILED %c\n", failed);
  return 13;
}
