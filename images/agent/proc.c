/* Processes: starting an exec (pipes or a pty), its I/O, killing its group, reaping it. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct exec *find_exec(struct agent *a, uint32_t id) {
  for (int i = 0; i < a->nexecs; i++)
    if (a->execs[i]->id == id) return a->execs[i];
  return NULL;
}

static void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static size_t key_len(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq ? (size_t)(eq - entry) : strlen(entry);
}

static int has_key(char **list, const char *entry) {
  size_t n = key_len(entry);
  for (; list && *list; list++)
    if (key_len(*list) == n && !strncmp(*list, entry, n)) return 1;
  return 0;
}

static int is_marker(const char *entry) { return !strncmp(entry, MARKER_ENV "=", sizeof MARKER_ENV); }

/* The exec's environment: the agent's own, overridden by the request's, then the marker. */
static char **build_env(char **base, char **extra, char *marker) {
  size_t n = 0, m = 0;
  for (char **e = base; e && *e; e++) n++;
  for (char **e = extra; e && *e; e++) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (!env) return NULL;
  for (char **e = base; e && *e; e++)
    if (!has_key(extra, *e) && !is_marker(*e)) env[m++] = *e;
  for (char **e = extra; e && *e; e++)
    if (!is_marker(*e)) env[m++] = *e;
  env[m++] = marker;
  return env;
}

/* execvp with the PATH of the exec's own environment (as `docker exec` resolves it). */
static void exec_path(char **argv, char **env) {
  const char *file = argv[0];
  if (strchr(file, '/')) {
    execve(file, argv, env);
    return;
  }
  const char *path = DEFAULT_PATH;
  for (char **e = env; *e; e++)
    if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
  int denied = 0;
  char full[4096];
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    size_t dl = (size_t)(end - p);
    if (dl + strlen(file) + 2 <= sizeof full) {
      if (dl == 0) strcpy(full, file);
      else snprintf(full, sizeof full, "%.*s/%s", (int)dl, p, file);
      execve(full, argv, env);
      if (errno == EACCES) denied = 1;
    }
    if (!*end) break;
    p = end;
  }
  errno = denied ? EACCES : ENOENT;
}

_Noreturn static void child_fail(const char *what, const char *arg, int code) {
  char msg[512];
  int e = errno;
  int n = snprintf(msg, sizeof msg, "director-agent: %s %s: %s\n", what, arg, strerror(e));
  if (n > 0) (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  _exit(code);
}

static void child_signals(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
}

extern char **environ;

/*
 * Closes every descriptor above 2: close_range where the kernel (5.9) and the seccomp profile
 * allow it; else those /proc/self/fd lists (readable by the process itself, non-dumpable or
 * not); else every number the agent can have used (its socket, signalfd and three per exec).
 */
static void close_above_stdio(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0) return;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int open_fds[4 * MAX_EXECS + 64], n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < (int)(sizeof open_fds / sizeof *open_fds)) {
      int fd = atoi(de->d_name);
      if (fd > 2 && fd != dirfd(d)) open_fds[n++] = fd;
    }
    int complete = de == NULL;
    closedir(d);
    for (int i = 0; i < n; i++) close(open_fds[i]);
    if (complete) return;
  }
  for (int fd = 3; fd < 4 * MAX_EXECS + 64; fd++) close(fd);
}

/*
 * Flag 8: the agent's own `tree` (the checkpoint reader, tree.c) in this fork of the agent,
 * instead of execve of the same binary (which costs ~0.6 ms here, ten times the fork). What
 * differs from an exec'd `tree`, and why it is safe (docs/agent.md, threat model 3):
 * - The fork holds a copy of the agent's memory, and stays non-dumpable as the agent is (an
 *   exec'd process is dumpable again): no sandbox process can ptrace it or read its memory. Its
 *   stack variables start zeroed (-ftrivial-auto-var-init=zero, build.sh), so the agent's
 *   leftovers on the stack it reuses (frames read from Director, other processes' environments
 *   read by kill_marked) cannot reach the tree's output through an uninitialised read. The heap
 *   is not wiped (writing the agent's buffers would copy every page of them into the fork):
 *   the tree code reads no byte of an allocation it did not write.
 * - No descriptor of the agent's crosses: everything above 2 is closed (the channel's socket,
 *   the signalfd, other executes' pipes), where an exec would have dropped the close-on-exec ones.
 * - The environment is the exec's (getenv reads it); /proc/<pid>/environ still shows the
 *   agent's, so the marker sweep of kill_marked never finds the fork (the process group does):
 *   tree code must never start a process. Signals as for an exec (child_signals); the session,
 *   process group and stdio are an exec's.
 * - The tree code never runs in the agent itself: its static state is fresh in every fork.
 * - It ends with exit(), not _exit(): tree-restore.c prints its answer through stdio. The agent
 *   itself never writes stdout through stdio and registers no atexit handler, so nothing of it
 *   is flushed twice.
 */
_Noreturn static void run_tree(struct exec_req *r, char **env) {
  close_above_stdio();
  environ = env;
  prctl(PR_SET_NAME, "director-tree", 0, 0, 0);
  int argc = 0;
  while (r->argv[argc]) argc++;
  exit(tree_main(argc, r->argv));
}

/* In the child: own session and process group, the given stdio, the working dir, then exec (or the agent's own tree). */
_Noreturn static void child(struct exec_req *r, char **env, const char *slave, int in, int out, int err) {
  child_signals();
  setsid();
  if (slave) {
    int s = open(slave, O_RDWR);
    if (s < 0) child_fail("open", slave, 126);
    ioctl(s, TIOCSCTTY, 0);
    in = out = err = s;
  } else if (in < 0) {
    in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  /* The agent keeps 0, 1 and 2 open, so these descriptors are all above 2. */
  if (in >= 0) dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  if (r->workdir && chdir(r->workdir) < 0) child_fail("cannot change to", r->workdir, 126);
  if (r->tree) run_tree(r, env);
  exec_path(r->argv, env);
  child_fail("exec", r->argv[0], errno == ENOENT ? 127 : 126);
}

/*
 * Starts the child with vfork: the agent is suspended until the child has exec'd (or failed),
 * which saves copying the agent's page tables on every exec. The child writes no memory the
 * agent reads afterwards (it runs on stack frames below this one; its descriptor table,
 * signal handlers, mask and working directory are its own) and ends in execve or _exit.
 * A function of its own, so nothing of the caller's is live in registers across the vfork.
 * The agent's own tree (flag 8) runs on in the child, writing memory: fork then.
 */
__attribute__((noinline)) static pid_t spawn(struct exec_req *r, char **env, const char *slave, int in, int out, int err) {
  pid_t pid = r->tree ? fork() : vfork();
  if (pid == 0) child(r, env, slave, in, out, err);
  return pid;
}

static void free_exec(struct exec *e) {
  close_fd(&e->out[0]);
  close_fd(&e->out[1]);
  close_fd(&e->in);
  buf_free(&e->input);
  free(e);
}

void start_exec(struct agent *a, uint32_t id, struct exec_req *r) {
  if (find_exec(a, id)) {
    send_error(a, id, "exec id already in use");
    return;
  }
  if (a->nexecs >= MAX_EXECS) {
    send_exit(a, id, EXIT_FAILED, EAGAIN, 0);
    return;
  }
  struct exec *e = calloc(1, sizeof *e);
  if (!e) {
    send_exit(a, id, EXIT_FAILED, ENOMEM, 0);
    return;
  }
  e->id = id;
  e->out[0] = e->out[1] = e->in = -1;
  e->tty = r->tty;
  e->finish_on_disconnect = r->finish_on_disconnect;
  e->window = INITIAL_WINDOW;
  unsigned char rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) memset(rnd, 0, sizeof rnd);
  for (int i = 0; i < 16; i++) snprintf(e->marker + 2 * i, 3, "%02x", rnd[i]);
  char marker[64];
  snprintf(marker, sizeof marker, "%s=%s", MARKER_ENV, e->marker);

  int cin = -1, cout = -1, cerr = -1, fail = 0;
  const char *step = "pty";
  char slave[128] = {0};
  if (r->tty) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, sizeof slave) != 0) {
      fail = errno ? errno : EIO;
      if (m >= 0) close(m);
    } else {
      struct winsize ws = {.ws_row = r->rows ? r->rows : 24, .ws_col = r->cols ? r->cols : 80};
      ioctl(m, TIOCSWINSZ, &ws);
      e->out[0] = m;
      e->in = fcntl(m, F_DUPFD_CLOEXEC, 3);
    }
  } else {
    int po[2], pe[2], pi[2];
    step = "pipe";
    if (pipe2(po, O_CLOEXEC) < 0) fail = errno;
    else if (pipe2(pe, O_CLOEXEC) < 0) fail = errno, close(po[0]), close(po[1]);
    else if (r->stdin_open && pipe2(pi, O_CLOEXEC) < 0) fail = errno, close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
    else {
      e->out[0] = po[0], cout = po[1];
      e->out[1] = pe[0], cerr = pe[1];
      if (r->stdin_open) e->in = pi[1], cin = pi[0];
    }
  }
  char **env = fail ? NULL : build_env(a->env, r->env, marker);
  if (!fail && !env) fail = ENOMEM, step = "environment";
  if (!fail) step = "fork";
  pid_t pid = fail ? -1 : spawn(r, env, r->tty ? slave : NULL, cin, cout, cerr);
  if (pid < 0 && !fail) fail = errno;
  free(env);
  close_fd(&cin);
  close_fd(&cout);
  close_fd(&cerr);
  if (fail) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: %s", step, strerror(fail));
    free_exec(e);
    send_error(a, id, msg);
    send_exit(a, id, EXIT_FAILED, fail, 0);
    return;
  }
  e->pid = pid;
  for (int i = 0; i < 2; i++)
    if (e->out[i] >= 0) nonblocking(e->out[i]);
  if (e->in >= 0) nonblocking(e->in);
  if (r->timeout_ms) e->deadline_ms = now_ms() + r->timeout_ms;
  a->execs[a->nexecs++] = e;
  send_u32(a, F_STARTED, id, (uint32_t)pid);
}

/* Whether /proc/PID/environ holds `entry` (with its NUL) as one whole entry. */
static int environ_has(long pid, const char *entry, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/environ", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0; /* gone, or another user's */
  struct buf b = {0};
  /* Filled by read before use: not zeroed on every call (build.sh's -ftrivial-auto-var-init). */
  __attribute__((uninitialized)) unsigned char chunk[16384];
  ssize_t r;
  while (b.len < (4u << 20) && (r = read(fd, chunk, sizeof chunk)) > 0)
    if (buf_put(&b, chunk, (size_t)r) < 0) break;
  close(fd);
  int found = 0;
  for (size_t i = 0; !found && i + n <= b.len; i++)
    found = (i == 0 || b.p[i - 1] == 0) && !memcmp(b.p + i, entry, n);
  buf_free(&b);
  return found;
}

/* SIGKILLs every process whose environment carries this exec's marker (it left the group). */
static void kill_marked(const char *marker) {
  char entry[64];
  int n = snprintf(entry, sizeof entry, "%s=%s", MARKER_ENV, marker) + 1; /* with its NUL */
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *de;
  pid_t self = getpid();
  while ((de = readdir(d))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid <= 1 || pid == self) continue;
    if (environ_has(pid, entry, (size_t)n)) kill((pid_t)pid, SIGKILL);
  }
  closedir(d);
}

void kill_exec(struct exec *e, int sig) {
  kill(-e->pid, sig);
  if (!e->reaped) kill(e->pid, sig);
  if (sig == SIGKILL) {
    if (!e->drain_by_ms) e->drain_by_ms = now_ms() + DRAIN_AFTER_KILL_MS;
    kill_marked(e->marker);
    kill_marked(e->marker); /* a fork during the first pass */
  }
}

void cut_output(struct exec *e) {
  close_fd(&e->out[0]);
  close_fd(&e->out[1]);
}

void kill_all(struct agent *a) {
  for (int i = 0; i < a->nexecs; i++) kill_exec(a->execs[i], SIGKILL);
}

/*
 * The connection was lost: execs flagged to finish on disconnect get end of input (stdin
 * closed, what Director had sent but was not written yet dropped) and keep running under
 * their deadline; every other exec is killed.
 */
void detach_all(struct agent *a) {
  for (int i = 0; i < a->nexecs; i++) {
    struct exec *e = a->execs[i];
    if (!e->finish_on_disconnect) {
      kill_exec(e, SIGKILL);
      continue;
    }
    buf_free(&e->input);
    e->input_eof = 1;
    close_fd(&e->in);
  }
}

void reap(struct agent *a) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
    if (p == a->command) {
      a->command_done = 1;
      a->command_status = st;
      continue;
    }
    for (int i = 0; i < a->nexecs; i++)
      if (a->execs[i]->pid == p && !a->execs[i]->reaped) {
        a->execs[i]->reaped = 1;
        a->execs[i]->status = st;
      }
  }
}

void exec_write(struct agent *a, struct exec *e) {
  while (e->in >= 0 && buf_size(&e->input)) {
    ssize_t n = write(e->in, e->input.p + e->input.off, buf_size(&e->input));
    if (n > 0) {
      buf_drop(&e->input, (size_t)n);
      send_u32(a, F_STDIN_ACK, e->id, (uint32_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    /* The process closed its input: what is left is dropped (and credited back). */
    send_u32(a, F_STDIN_ACK, e->id, (uint32_t)buf_size(&e->input));
    buf_drop(&e->input, buf_size(&e->input));
    close_fd(&e->in);
  }
  if (e->input_eof && !e->tty && !buf_size(&e->input)) close_fd(&e->in);
}

void exec_input(struct agent *a, struct exec *e, const unsigned char *p, size_t n) {
  if (n == 0) e->input_eof = 1;
  else if (e->in < 0 || buf_put(&e->input, p, n) < 0) send_u32(a, F_STDIN_ACK, e->id, (uint32_t)n);
  exec_write(a, e);
}

void exec_resize(struct exec *e, uint16_t cols, uint16_t rows) {
  struct winsize ws = {.ws_row = rows, .ws_col = cols};
  int fd = e->in >= 0 ? e->in : e->out[0];
  if (e->tty && fd >= 0) ioctl(fd, TIOCSWINSZ, &ws);
}

/*
 * Reads one chunk (within the window) and sends it; returns 1 when something happened.
 * Without a channel (lost) the chunk is read whole and dropped: an exec that runs on after a
 * disconnect must not block on a full pipe, and nothing may pile up for nobody.
 */
int exec_read(struct agent *a, struct exec *e, int which) {
  static unsigned char chunk[MAX_CHUNK];
  size_t want = a->sock < 0 ? MAX_CHUNK : e->window < MAX_CHUNK ? (size_t)e->window : MAX_CHUNK;
  if (!want || e->out[which] < 0) return 0;
  ssize_t n = read(e->out[which], chunk, want);
  if (n > 0 && a->sock < 0) return 1;
  if (n > 0) {
    send_frame(a, which ? F_STDERR : F_STDOUT, e->id, chunk, (size_t)n);
    e->window -= (uint64_t)n;
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  close_fd(&e->out[which]); /* end of file, or EIO from a pty whose other side is gone */
  return 1;
}

/* Sends the exit of every exec whose process was reaped and whose output reached its end. */
void finish_done(struct agent *a) {
  for (int i = 0; i < a->nexecs;) {
    struct exec *e = a->execs[i];
    if (!e->reaped || e->out[0] >= 0 || e->out[1] >= 0) {
      i++;
      continue;
    }
    if (WIFSIGNALED(e->status)) send_exit(a, e->id, EXIT_SIGNAL, WTERMSIG(e->status), e->timed_out);
    else send_exit(a, e->id, EXIT_CODE, WEXITSTATUS(e->status), e->timed_out);
    free_exec(e);
    a->execs[i] = a->execs[--a->nexecs];
  }
}

/* The sandbox's own command: the agent's child with the container's stdio and environment. */
pid_t spawn_command(struct agent *a, char **argv) {
  pid_t pid = fork();
  if (pid == 0) {
    child_signals();
    exec_path(argv, a->env);
    child_fail("exec", argv[0], errno == ENOENT ? 127 : 126);
  }
  return pid;
}
