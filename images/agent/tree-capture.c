/*
 * `tree capture`: the tar of the paths the host asked for (see tree.c for the protocol). The
 * paths come from the host, the files from the sandbox: a path is refused unless it is relative
 * without `.`, `..` or empty components, and every file is opened from its parent directory,
 * itself resolved afresh for each path without following a symlink in any component
 * (open_parent), so a symlink planted on the way is never followed (the path is then reported
 * missing, as one removed since the listing is).
 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void put_symlink(int dir, const char *leaf, const char *path, const struct stat *st);

/* `leaf` of directory `dir` (the parent of `path`), which was a regular file when listed. */
static void put_file(int dir, const char *leaf, const char *path) {
  int fd = openat(dir, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP) { /* a symlink now */
      struct stat st;
      if (fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) return put_symlink(dir, leaf, path, &st);
    }
    return skip(path, "cannot open", e);
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

static void put_symlink(int dir, const char *leaf, const char *path, const struct stat *st) {
  char target[MAX_NAME + 1];
  ssize_t n = readlinkat(dir, leaf, target, MAX_NAME);
  if (n < 0) return skip(path, "cannot read link", errno);
  target[n] = 0;
  entry_header(path, target, '2', st->st_mode, 0, st->st_mtim.tv_sec, st);
}

int tree_capture_paths(int rootfd, const char *in, size_t len) {
  size_t at = 0;
  while (at < len) {
    const char *p = in + at;
    const char *end = memchr(p, 0, len - at);
    if (!end) break; /* an unterminated tail is not a path */
    at = (size_t)(end - in) + 1;
    const char *why = p[0] != '.' || p[1] != '/' ? "not a ./path" : path_problem(p + 2);
    if (why) {
      fprintf(stderr, "director-tree: refused: %s: %.200s\n", why, p);
      return 1;
    }
    const char *path = p + 2, *leaf;
    struct stat st;
    /* The parent resolved once per path: its lstat and its open go through the same directory fd. */
    int dir = open_parent(rootfd, path, &leaf);
    if (dir < 0 || fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      skip(path, "cannot stat", errno);
      if (dir >= 0) close(dir);
      continue;
    }
    if (S_ISLNK(st.st_mode)) put_symlink(dir, leaf, path, &st);
    else if (S_ISREG(st.st_mode)) put_file(dir, leaf, path);
    else skip(path, "not a regular file or symlink any more", 0);
    close(dir);
  }
  out_put(zeros, 512);
  out_put(zeros, 512);
  out_flush();
  return shrank ? 1 : missing ? 123 : 0;
}

int tree_capture(int rootfd) {
  size_t len;
  char *in = read_fd(0, &len); /* the host sends the paths and closes stdin */
  if (!in) {
    perror("director-tree: reading the paths");
    return 1;
  }
  if (len < 2 || in[0] != '1' || in[1] != '\n') return 0; /* `0`, or nothing: nothing to read */
  int code = tree_capture_paths(rootfd, in + 2, len - 2);
  free(in);
  return code;
}
