/*
 * The checkpoint reader, `director-agent tree ...` (tree.c), split by concern: tree.c the entry
 * point, the buffered output and the listing; tree-path.c the path rules and the opens that never
 * follow a symlink; tree-capture.c the tar writer; tree-restore.c the tar reader and the swap.
 *
 * Everything under MOUNT belongs to untrusted code (the sandbox, running beside this process as
 * the same user, can rename, replace and re-link anything at any time), and the archive a restore
 * reads comes from an API user. So every path below MOUNT is resolved afresh from a directory fd
 * refusing a symlink in any component (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or
 * one component at a time with O_NOFOLLOW where openat2 is refused): never followed; modes are
 * changed through an open fd, and the archive is parsed with every length checked.
 */
#ifndef DIRECTOR_TREE_H
#define DIRECTOR_TREE_H

#include "agent.h"

#include <sys/stat.h>

#define STAGE_PREFIX ".director-restore-"
#define OUT_BUF (256u << 10)
#define MAX_NAME 4096

/* tree.c: stdout, buffered */
void out_flush(void);
void out_put(const void *p, size_t n);
void out_str(const char *s);
/* The listing of the mount (`T`, then one line per entry); -1 when it failed (a message on stderr). */
int tree_list(int rootfd, const char *seconds);

/* tree-path.c */
void die_oom(void);
/* Why `p` may not be touched (absolute, empty, a `.` or `..` or empty component, too long); NULL when it may. */
const char *path_problem(const char *p);
/* The directory holding `p`'s last component, opened (O_PATH) from `at` without following a symlink in any component: one openat2 (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or, where openat2 is refused, one component at a time with O_NOFOLLOW; *leaf points into p. -1 with errno (ELOOP/ENOTDIR: a symlink or non-directory on the way). */
int open_parent(int at, const char *p, const char **leaf);
/* open_parent walks component by component from now on, as where openat2 is refused (DIRECTOR_TREE_WALK set: for tests). */
void tree_walk_only(void);
/* `p` opened from `at` with `flags` | O_NOFOLLOW, every component before it as open_parent does; "" or "." is `at` itself. -1 with errno. */
int open_beneath(int at, const char *p, int flags);
/* lstat of `p` below `at` (never through a symlink). */
int lstat_beneath(int at, const char *p, struct stat *st);
/* chmod through an open fd (also O_PATH: through /proc/self/fd). Callers open it O_DIRECTORY | O_NOFOLLOW, so it is never a symlink. */
int chmod_fd(int fd, mode_t mode);
/* renameat of two paths below `at`, both resolved as open_parent does. */
int rename_beneath(int at, const char *from, const char *to);
/* Removes `name` (one component of directory `at`) and everything under it, never through a symlink. */
int rm_tree(int at, const char *name);
/* What `fd` holds up to its end, NUL-terminated (its length in *len when len is not NULL); NULL with errno when a read failed. */
char *read_fd(int fd, size_t *len);
/* A whole file below `at`, NUL-terminated; NULL when it cannot be read. */
char *read_file_beneath(int at, const char *p);

/* tree-capture.c */
/* The tar of the paths the host sends on stdin (`0`, or `1` and NUL-terminated `./paths`). */
int tree_capture(int rootfd);
/* The tar of `paths` (`len` bytes of NUL-terminated `./paths`), checked as the host's are. */
int tree_capture_paths(int rootfd, const char *paths, size_t len);

/* tree-restore.c */
int tree_restore(int rootfd, const char *stage, const char *marker, int commit);

#endif
