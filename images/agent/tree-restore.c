/*
 * `tree restore MOUNT STAGE MARKER COMMIT`: the tar on stdin (from the host's packTree, built
 * from what an API user sent) extracted under STAGE, then swapped in by renames as STAGE/plan
 * says (see tree.c and tree-script.ts for the protocol).
 *
 * The archive is hostile input: a header's checksum and numbers are checked (a size that does
 * not fit, a base-256 number that overflows: refused); a pax record's length is bounded by its
 * header and checked against what is left of it before anything is read (no read past the
 * record, no overflow); pax and GNU long names and link targets are bounded (4096 bytes, no NUL);
 * an entry named outside STAGE (absolute, with a `.`, `..` or empty component) is refused; so
 * are hard links, devices, FIFOs and any other type; an archive that ends before its two end
 * blocks is an error. Nothing is created through a symlink: each entry's parent is resolved
 * afresh from the mount without following a symlink in any component (open_parent: a symlink
 * the archive itself made, or one the sandbox planted meanwhile, fails it), files are created
 * O_EXCL|O_NOFOLLOW, and modes and times are set through an fd or without following. A refused
 * archive leaves nothing: the stage is removed (never through a symlink) and the mount is as it
 * was.
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

/* Largest pax header accepted (the host's carry a path and a link target). */
#define MAX_PAX (64u << 10)
/* Largest entry size accepted (more than any tmpfs here holds; keeps the padding arithmetic exact). */
#define MAX_ENTRY_SIZE (1ull << 40)

static int exists_at(int rootfd, const char *path) {
  struct stat st;
  return lstat_beneath(rootfd, path, &st) == 0;
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
static int in_read(void *dst, unsigned long long n) {
  unsigned char *p = dst;
  while (n) {
    if (in_fill() < 0) return -1;
    size_t k = in_len - in_off < n ? in_len - in_off : (size_t)n;
    if (p) memcpy(p, in_buf + in_off, k), p += k;
    in_off += k, n -= k;
  }
  return 0;
}

/*
 * A numeric header field: octal digits (leading spaces or NULs, then digits, then only spaces
 * or NULs), or GNU's base-256 (first byte 0x80, big-endian). -1 for anything else or a value
 * that does not fit 63 bits.
 */
static int parse_num(const unsigned char *f, size_t width, unsigned long long *out) {
  unsigned long long v = 0;
  if (f[0] & 0x80) {
    if (f[0] != 0x80) return -1; /* negative, or more than 8 bytes of value */
    for (size_t i = 1; i < width; i++) {
      if (v >> 55) return -1;
      v = (v << 8) | f[i];
    }
    *out = v;
    return 0;
  }
  size_t i = 0;
  while (i < width && (f[i] == ' ' || f[i] == 0)) i++;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
    if (v >> 60) return -1;
    v = v * 8 + (unsigned)(f[i] - '0');
  }
  for (; i < width; i++)
    if (f[i] != ' ' && f[i] != 0) return -1;
  *out = v;
  return 0;
}

static void refuse(const char *why, const char *name) {
  if (name) fprintf(stderr, "director-tree: refused: %s: %.200s\n", why, name);
  else fprintf(stderr, "director-tree: refused: %s\n", why);
}

/*
 * The records of a pax header ("LEN key=value\n", LEN counting the whole record): `path` and
 * `linkpath` taken, other keys ignored. -1 (after a message) for a malformed record: a length
 * that is not decimal, runs past the header or cannot hold its own text, a record not ended by
 * a line break, a key without `=`, a name longer than MAX_NAME or holding a NUL.
 */
static int parse_pax(const char *rec, size_t size, char **path, char **link) {
  size_t at = 0;
  while (at < size) {
    size_t i = at, len = 0;
    while (i < size && rec[i] >= '0' && rec[i] <= '9' && len <= size) len = len * 10 + (size_t)(rec[i++] - '0');
    /* At least "N k=\n": the digits, a space, a key, `=`, the line break. */
    if (i == at || i >= size || rec[i] != ' ' || len > size - at || len < (i - at) + 4) {
      refuse("a malformed pax record length", NULL);
      return -1;
    }
    const char *end = rec + at + len; /* one past the record */
    const char *kv = rec + i + 1;
    const char *eq = memchr(kv, '=', (size_t)(end - 1 - kv));
    if (end[-1] != '\n' || !eq || eq == kv) {
      refuse("a malformed pax record", NULL);
      return -1;
    }
    const char *val = eq + 1;
    size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - 1 - val);
    char **slot = klen == 4 && !memcmp(kv, "path", 4) ? path : klen == 8 && !memcmp(kv, "linkpath", 8) ? link : NULL;
    if (slot) {
      if (vlen == 0 || vlen > MAX_NAME || memchr(val, 0, vlen)) {
        refuse("a pax path empty, longer than 4096 bytes or holding a NUL", NULL);
        return -1;
      }
      free(*slot);
      *slot = strndup(val, vlen);
      if (!*slot) die_oom();
    }
    at += len;
  }
  return 0;
}

struct dir_time {
  char *name;
  long long mtime;
};

/* Why `name` may not be written by the restore (NULL: it may): STAGE or under it, relative, no `.`, `..` or empty component. */
static const char *outside_stage(const char *name, const char *stage) {
  const char *why = path_problem(name);
  if (why) return why;
  size_t n = strlen(stage);
  if (strncmp(name, stage, n) || (name[n] && name[n] != '/')) return "an entry outside the stage";
  return NULL;
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

static void failed_at(const char *name, int err) {
  if (err == ELOOP || err == ENOTDIR) refuse("a symlink or a non-directory on the way", name);
  else fprintf(stderr, "director-tree: ./%.1000s: %s\n", name, strerror(err));
}

/* Makes directory `name` (or keeps the one there) with `mode` | 0700, through its fd; -1 after a message. */
static int make_dir(int rootfd, const char *name, unsigned mode) {
  const char *leaf;
  int dir = open_parent(rootfd, name, &leaf);
  if (dir < 0) return failed_at(name, errno), -1;
  if (mkdirat(dir, leaf, 0700) < 0 && errno != EEXIST) {
    failed_at(name, errno);
    close(dir);
    return -1;
  }
  int fd = openat(dir, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int e = errno;
  close(dir);
  if (fd < 0) return failed_at(name, e), -1; /* ELOOP/ENOTDIR: something else took the name */
  if (fchmod(fd, (mode & 0777) | 0700) < 0) {
    failed_at(name, errno);
    close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

static int make_symlink(int rootfd, const char *name, const char *target, long long mtime) {
  const char *leaf;
  int dir = open_parent(rootfd, name, &leaf);
  if (dir < 0) return failed_at(name, errno), -1;
  if (symlinkat(target, dir, leaf) < 0) {
    failed_at(name, errno);
    close(dir);
    return -1;
  }
  struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};
  utimensat(dir, leaf, ts, AT_SYMLINK_NOFOLLOW);
  close(dir);
  return 0;
}

/* Creates file `name` and writes its `size` bytes from stdin; 0 done, -1 failed (message given), -2 input ended. */
static int make_file(int rootfd, const char *name, unsigned mode, unsigned long long size, long long mtime) {
  const char *leaf;
  int dir = open_parent(rootfd, name, &leaf);
  if (dir < 0) return failed_at(name, errno), -1;
  int fd = openat(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  int e = errno;
  close(dir);
  if (fd < 0) return failed_at(name, e), -1;
  unsigned long long left = size;
  while (left) {
    if (in_fill() < 0) {
      close(fd);
      return -2;
    }
    size_t k = in_len - in_off < left ? in_len - in_off : (size_t)left;
    if (write_all(fd, in_buf + in_off, k) < 0) {
      failed_at(name, errno);
      close(fd);
      return -1;
    }
    in_off += k, left -= k;
  }
  struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};
  if (fchmod(fd, mode & 0777) < 0 || futimens(fd, ts) < 0) {
    failed_at(name, errno);
    close(fd);
    return -1;
  }
  if (close(fd) < 0) return failed_at(name, errno), -1;
  return 0;
}

static int all_zero(const unsigned char *h) {
  for (size_t i = 0; i < 512; i++)
    if (h[i]) return 0;
  return 1;
}

/*
 * Extracts the tar on stdin (what the host's packTree writes: ustar with a prefix field, pax
 * records for other names) into the mount, only under `stage`. Files get the header's mode
 * (permission bits only) and mtime, directories their mtime once filled. -1 after a message on stderr.
 */
static int extract(int rootfd, const char *stage) {
  static char name[MAX_NAME + 1], link[MAX_NAME + 1];
  char *pax_path = NULL, *pax_link = NULL;
  struct dir_time *dirs = NULL;
  size_t ndirs = 0, capdirs = 0;
  int rc = -1;
  unsigned char h[512];
  for (;;) {
    if (in_read(h, 512) < 0) goto early;
    if (all_zero(h)) {
      /* The end: a second zero block must follow (an archive cut after one is truncated). */
      if (in_read(h, 512) < 0) goto early;
      if (!all_zero(h)) {
        refuse("data after an end-of-archive block", NULL);
        goto out;
      }
      break;
    }
    unsigned long long want, size, mode_raw, mtime_raw;
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? ' ' : h[i];
    if (parse_num(h + 148, 8, &want) < 0 || sum != want) {
      refuse("a malformed archive header (checksum)", NULL);
      goto out;
    }
    if (parse_num(h + 124, 12, &size) < 0 || size > MAX_ENTRY_SIZE || parse_num(h + 100, 8, &mode_raw) < 0) {
      refuse("a malformed archive header (size or mode)", NULL);
      goto out;
    }
    /* A time before 1970 comes as "-N" (the host's tar-format.ts writes what tar-stream did): 0 then. */
    if (parse_num(h + 136, 12, &mtime_raw) < 0) mtime_raw = 0;
    char type = (char)h[156];
    unsigned long long padded = (size + 511) / 512 * 512;
    if (type == 'x' || type == 'L' || type == 'K') {
      /* A long name: bounded before anything is read. */
      if (size > (type == 'x' ? MAX_PAX : MAX_NAME + 1)) {
        refuse(type == 'x' ? "a pax header larger than 64 KiB" : "a GNU long name longer than 4096 bytes", NULL);
        goto out;
      }
      char *rec = malloc((size_t)padded + 1);
      if (!rec) die_oom();
      if (in_read(rec, padded) < 0) {
        free(rec);
        goto early;
      }
      rec[size] = 0;
      int bad = 0;
      if (type == 'x') bad = parse_pax(rec, (size_t)size, &pax_path, &pax_link);
      else {
        size_t n = strnlen(rec, (size_t)size);
        if (n == 0 || n > MAX_NAME) {
          refuse("an empty or overlong GNU long name", NULL);
          bad = -1;
        } else {
          char **slot = type == 'L' ? &pax_path : &pax_link;
          free(*slot);
          if (!(*slot = strndup(rec, n))) die_oom();
        }
      }
      free(rec);
      if (bad) goto out;
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
    const char *why = outside_stage(name, stage);
    if (why) {
      refuse(why, name);
      goto out;
    }
    unsigned mode = (unsigned)(mode_raw & 0777);
    long long mtime = (long long)mtime_raw;
    if (type == '5') {
      if (make_dir(rootfd, name, mode) < 0) goto out;
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
      if (!*link) {
        refuse("a symlink without a target", name);
        goto out;
      }
      if (make_symlink(rootfd, name, link, mtime) < 0) goto out;
      if (in_read(NULL, padded) < 0) goto early;
    } else if (type == '0' || type == 0 || type == '7') {
      int r = make_file(rootfd, name, mode, size, mtime);
      if (r == -2) goto early;
      if (r < 0) goto out;
      if (in_read(NULL, padded - size) < 0) goto early;
    } else {
      refuse(type == '1'   ? "a hard link"
             : type == '3' ? "a character device"
             : type == '4' ? "a block device"
             : type == '6' ? "a FIFO"
                           : "an unsupported archive entry type",
             name);
      goto out;
    }
  }
  if (pax_path || pax_link) {
    refuse("a long name with no entry after it", NULL);
    goto out;
  }
  /* Directories last, deepest first: filling them set their mtime. Never through a symlink. */
  for (size_t i = ndirs; i-- > 0;) {
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = dirs[i].mtime}};
    const char *leaf;
    int dir = open_parent(rootfd, dirs[i].name, &leaf);
    if (dir >= 0) {
      utimensat(dir, leaf, ts, AT_SYMLINK_NOFOLLOW);
      close(dir);
    }
  }
  /* Whatever follows the end blocks is read, so the sender never sees its pipe break. */
  while (in_read(NULL, 1) == 0) {}
  rc = 0;
  goto out;
early:
  fputs("director-tree: the archive ended early (truncated)\n", stderr);
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

/* A plan path (`.` or `./x`) as a path relative to the mount ("" or "x"); NULL when it is neither or breaks the path rules. */
static const char *plan_path(const char *p) {
  if (!strcmp(p, ".")) return "";
  if (strncmp(p, "./", 2) || path_problem(p + 2)) return NULL;
  return p + 2;
}

/* Sets the mode of `path` ("" the mount) through an fd, never through a symlink: it must be a directory. */
static int chmod_dir(int rootfd, const char *path, mode_t mode) {
  int fd = open_beneath(rootfd, path, O_PATH | O_DIRECTORY);
  if (fd < 0) return -1;
  int r = chmod_fd(fd, mode & 07777);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

/*
 * The plan's swap (runtime/sandbox/tree-plan.ts planText), as the script's `swap` does it: per
 * directory, its `R` names moved aside to STAGE/o/DIR, then its `A` names moved in from
 * STAGE/t/DIR; then the `C` chmods. Every step done is logged; 'R', 'A' or 'C' on failure.
 * A line that names a path outside the rules (absolute, `..`, a name with a `/`) fails it.
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
    if (!ended && op == 'D') {
      dir = plan_path(arg);
      if (!dir) {
        refuse("a plan directory outside the mount", arg);
        return 'R';
      }
    } else if (!ended && op == 'E') ended = 1;
    else if (!ended && (op == 'R' || op == 'A')) {
      if (strchr(arg, '/') || path_problem(arg)) {
        refuse("a plan name that is not one path component", arg);
        return op;
      }
      join(where, sizeof where, dir, arg);
      if (op == 'R') {
        snprintf(src, sizeof src, "%s", where);
        snprintf(dst, sizeof dst, "%s/o/%s", stage, where);
      } else {
        snprintf(src, sizeof src, "%s/t/%s", stage, where);
        snprintf(dst, sizeof dst, "%s", where);
      }
      if (rename_beneath(rootfd, src, dst) < 0) {
        fprintf(stderr, "director-tree: moving ./%s to ./%s: %s\n", src, dst, strerror(errno));
        return op;
      }
      log_step(src, dst, 0);
    } else if (ended && op == 'C') {
      char *end, *end2;
      unsigned long mode = strtoul(arg, &end, 8), old = end != arg && *end == ' ' ? strtoul(end + 1, &end2, 8) : 0;
      /* Both modes, each followed by one space: a missing old mode would be undone as chmod 000. */
      if (end == arg || *end != ' ' || end2 == end + 1 || *end2 != ' ') {
        refuse("a plan chmod without its two modes", arg);
        return 'C';
      }
      const char *path = plan_path(end2 + 1);
      if (!path) {
        refuse("a plan chmod outside the mount", arg);
        return 'C';
      }
      if (chmod_dir(rootfd, path, (mode_t)mode) < 0) {
        fprintf(stderr, "director-tree: chmod ./%s: %s\n", path, strerror(errno));
        return 'C';
      }
      log_step(path, NULL, (unsigned)old);
    }
  }
  return 0;
}

/* Undoes the logged steps, last first; -1 when one could not be undone. */
static int undo_steps(int rootfd) {
  int bad = 0;
  for (size_t i = nsteps; i-- > 0;) {
    struct step *s = &steps[i];
    int r = s->b ? rename_beneath(rootfd, s->b, s->a) : chmod_dir(rootfd, s->a, s->old);
    if (r < 0) {
      fprintf(stderr, "director-tree: undoing ./%s: %s\n", s->b ? s->b : s->a, strerror(errno));
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

/*
 * `tree restore MOUNT STAGE MARKER COMMIT`: the script's `restore` in one process, with the same
 * output and exit statuses (see tree-script.ts): leftover stages removed, `T 0`, the listing and
 * MARKER; the archive on stdin extracted (only under STAGE), then swapped in by renames as
 * STAGE/plan says, every step undone if one fails. The stage keeps the script's layout, so the
 * script's `commit` and `undo` end an uncommitted restore either way.
 */
int tree_restore(int rootfd, const char *stage, const char *marker, int commit) {
  if (strncmp(stage, STAGE_PREFIX, sizeof STAGE_PREFIX - 1) || strchr(stage, '/') || path_problem(stage) ||
      strlen(stage) > sizeof STAGE_PREFIX + 32) {
    fprintf(stderr, "director-tree: not a stage name: %.200s\n", stage);
    return 2;
  }
  DIR *d = fdopendir(openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) {
    for (struct dirent *de; (de = readdir(d));)
      if (!strncmp(de->d_name, STAGE_PREFIX, sizeof STAGE_PREFIX - 1)) rm_tree(rootfd, de->d_name);
    closedir(d);
  }
  if (tree_list(rootfd, "0") < 0) {
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
  char *plan = read_file_beneath(rootfd, planfile);
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
