/*
 * director-agent serve [--socket PATH] [-- COMMAND [ARG...]]
 *
 * Two processes. The keeper (this one, the sandbox's main process under Docker's init) forks
 * the server, which connects once to Director's socket (before anything else runs in the
 * sandbox) and serves execs; once the server said hello (or could not), the keeper starts
 * COMMAND, if any, and exits with its status, as the sandbox's main process would; without
 * one it waits until it is signalled. A server that dies leaves the sandbox running (Director
 * then runs executes through `docker exec`). See docs/agent.md.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static _Noreturn void usage(void) {
  fputs("usage: director-agent serve [--socket PATH] [-- COMMAND [ARG...]]\n"
        "       director-agent tree capture|restore|list ... (images/agent/tree.c)\n",
        stderr);
  exit(2);
}

static int connect_director(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return errno = ENAMETOOLONG, -1;
  strcpy(addr.sun_path, path);
  for (int attempt = 0; attempt < 50; attempt++) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
    int e = errno;
    close(fd);
    /* Only a full backlog is worth a retry: the socket exists before the sandbox starts. */
    if (e != EAGAIN && e != EINTR) return errno = e, -1;
    usleep(2000);
  }
  return errno = EAGAIN, -1;
}

/*
 * The channel is gone: nobody can receive the execs' output any more. Execs that asked to
 * finish on disconnect (a restore's swap, which must not stop half-way) run on with their
 * input closed and their output discarded, until they end or their timeout kills them; the
 * others are killed. Nothing is queued from now on (send_frame needs a channel).
 */
static void lost(struct agent *a) {
  if (a->sock < 0) return;
  close(a->sock);
  a->sock = -1;
  buf_free(&a->rx);
  buf_free(&a->tx);
  detach_all(a);
}

static void flush(struct agent *a) {
  while (a->sock >= 0 && buf_size(&a->tx)) {
    ssize_t n = send(a->sock, a->tx.p + a->tx.off, buf_size(&a->tx), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) buf_drop(&a->tx, (size_t)n);
    else if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    else lost(a);
  }
}

static void handle(struct agent *a, uint8_t type, uint32_t id, const unsigned char *p, size_t n) {
  struct exec *e = type == F_EXEC || type == F_PING ? NULL : find_exec(a, id);
  switch (type) {
  case F_EXEC: {
    struct exec_req r;
    if (parse_exec(p, n, &r) < 0) {
      send_error(a, id, "malformed exec");
      send_exit(a, id, EXIT_FAILED, EINVAL, 0);
      return;
    }
    start_exec(a, id, &r);
    exec_req_free(&r);
    return;
  }
  case F_STDIN:
    if (e) exec_input(a, e, p, n);
    return;
  case F_KILL:
    if (e && n == 1 && p[0] >= 1 && p[0] <= 64) kill_exec(e, p[0]);
    return;
  case F_RESIZE:
    if (e && n == 4) exec_resize(e, get_u16(p), get_u16(p + 2));
    return;
  case F_WINDOW:
    if (e && n == 4 && e->window < (1ull << 40)) e->window += get_u32(p);
    return;
  case F_PING:
    send_frame(a, F_PONG, id, NULL, 0);
    return;
  default:
    send_error(a, id, "unknown frame type");
  }
}

static void receive(struct agent *a) {
  /* Filled by read before use: not zeroed on every call (build.sh's -ftrivial-auto-var-init). */
  __attribute__((uninitialized)) unsigned char chunk[65536];
  for (;;) {
    ssize_t n = recv(a->sock, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (n <= 0 || buf_put(&a->rx, chunk, (size_t)n) < 0) {
      lost(a);
      return;
    }
    if ((size_t)n < sizeof chunk) break;
  }
  while (buf_size(&a->rx) >= FRAME_HEADER) {
    const unsigned char *h = a->rx.p + a->rx.off;
    uint32_t len = get_u32(h);
    if (len > MAX_HOST_FRAME) {
      send_error(a, 0, "frame too large");
      flush(a);
      lost(a);
      return;
    }
    if (buf_size(&a->rx) < FRAME_HEADER + (size_t)len) break;
    handle(a, h[4], get_u32(h + 5), h + FRAME_HEADER, len);
    buf_drop(&a->rx, FRAME_HEADER + (size_t)len);
  }
}

static _Noreturn void finish(struct agent *a, int status) {
  flush(a);
  if (WIFSIGNALED(status)) exit(128 + WTERMSIG(status));
  exit(WEXITSTATUS(status));
}

static int status_code(int st) { return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st); }

/*
 * The keeper: forks the server, waits for its hello (the pipe closes), starts the command,
 * forwards stop signals and exits with the command's status (or, without a command, once it
 * was signalled and the server ended). Returns in the server, with the pipe's write end.
 */
static int keep(char **command, const sigset_t *set) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return -1;
  pid_t keeper = getpid();
  pid_t server = fork();
  if (server < 0) return -1;
  if (server == 0) {
    close(ready[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != keeper) _exit(125);
    return ready[1];
  }
  close(ready[1]);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  char c;
  while (read(ready[0], &c, 1) < 0 && errno == EINTR) {}
  close(ready[0]);
  static struct agent k;
  k.env = environ;
  pid_t cmd = command ? spawn_command(&k, command) : 0;
  if (cmd < 0) {
    perror("director-agent: fork");
    exit(125);
  }
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) continue;
    if (sig == SIGCHLD) {
      int st;
      pid_t p;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == cmd) {
          if (server > 0) kill(server, SIGKILL);
          exit(status_code(st));
        } else if (p == server) server = 0;
      continue;
    }
    if (cmd) {
      kill(cmd, sig); /* as Docker's init does for its child */
      continue;
    }
    /* Without a command a stop signal ends the sandbox, as it ended `sleep infinity` (a stopped
       server must not hold it up); the execs go with the sandbox's pid namespace. */
    if (server > 0) kill(server, SIGKILL);
    exit(128 + sig);
  }
}

static void on_signal(struct agent *a, int sig) {
  if (sig == SIGCHLD) {
    reap(a);
    return;
  }
  if (a->command && !a->command_done) {
    kill(a->command, sig); /* as Docker's init does for its child */
    return;
  }
  kill_all(a);
  flush(a);
  exit(128 + sig);
}

int main(int argc, char **argv) {
  /* Multi-call: the checkpoint reader (tree.c) is the same static binary, run as an exec. */
  if (argc >= 2 && !strcmp(argv[1], "tree")) return tree_main(argc, argv);
  if (argc < 2 || strcmp(argv[1], "serve")) usage();
  const char *path = AGENT_SOCKET;
  int i = 2;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--socket") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--")) {
      i++;
      break;
    } else usage();
  }
  char **command = i < argc ? argv + i : NULL;

  sigset_t set;
  sigemptyset(&set);
  int handled[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t k = 0; k < sizeof handled / sizeof *handled; k++) sigaddset(&set, handled[k]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int ready = keep(command, &set);
  if (ready < 0) {
    perror("director-agent: keeper");
    return 125;
  }
  int has_command = command != NULL;
  command = NULL; /* the keeper runs it */

  /* No other process of the sandbox user may ptrace this one, read its memory or take its socket. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  /* Keep 0-2 open so no pipe of an exec lands there. */
  int fd;
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    perror("director-agent: signalfd");
    return 125;
  }

  static struct agent a;
  a.env = environ;
  a.sock = connect_director(path);
  if (a.sock < 0) {
    fprintf(stderr, "director-agent: no channel at %s: %s; serving nothing\n", path, strerror(errno));
  } else {
    unsigned char hello[12];
    put_u32(hello, AGENT_PROTOCOL);
    put_u32(hello + 4, (uint32_t)getpid());
    put_u32(hello + 8, has_command ? 1 : 0);
    send_frame(&a, F_HELLO, 0, hello, sizeof hello);
    flush(&a);
  }
  /* The hello is out: the keeper may start the sandbox's command now. */
  close(ready);

  static struct pollfd fds[2 + 3 * MAX_EXECS];
  static struct exec *owner[2 + 3 * MAX_EXECS];
  static int role[2 + 3 * MAX_EXECS];
  for (;;) {
    if (a.command_done) finish(&a, a.command_status);
    int n = 0, sock_at = -1;
    fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    if (a.sock >= 0) {
      sock_at = n;
      fds[n++] = (struct pollfd){.fd = a.sock, .events = POLLIN | (buf_size(&a.tx) ? POLLOUT : 0)};
    }
    int read_output = buf_size(&a.tx) < TX_HIGH;
    int64_t now = now_ms(), next = -1;
    for (int k = 0; k < a.nexecs; k++) {
      struct exec *e = a.execs[k];
      for (int w = 0; w < 2; w++)
        /* Without a channel output is read and dropped (no window, nothing queued). */
        if (e->out[w] >= 0 && (a.sock < 0 || (e->window && read_output))) {
          owner[n] = e, role[n] = w;
          fds[n++] = (struct pollfd){.fd = e->out[w], .events = POLLIN};
        }
      if (e->in >= 0 && buf_size(&e->input)) {
        owner[n] = e, role[n] = 2;
        fds[n++] = (struct pollfd){.fd = e->in, .events = POLLOUT};
      }
      if (e->deadline_ms && (next < 0 || e->deadline_ms < next)) next = e->deadline_ms;
      if (e->drain_by_ms && e->reaped && (next < 0 || e->drain_by_ms < next)) next = e->drain_by_ms;
    }
    int timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
    if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR) {
      perror("director-agent: poll");
      return 125;
    }
    if (fds[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) on_signal(&a, (int)si.ssi_signo);
    }
    if (sock_at >= 0 && fds[sock_at].revents & (POLLIN | POLLHUP | POLLERR)) receive(&a);
    for (int k = sock_at >= 0 ? 2 : 1; k < n; k++) {
      if (!fds[k].revents) continue;
      /* Execs are freed only in finish_done, so every owner is still valid here. */
      if (role[k] == 2) exec_write(&a, owner[k]);
      else exec_read(&a, owner[k], role[k]);
    }
    now = now_ms();
    for (int k = 0; k < a.nexecs; k++) {
      struct exec *e = a.execs[k];
      if (e->deadline_ms && now >= e->deadline_ms) {
        e->timed_out = 1;
        e->deadline_ms = 0;
        kill_exec(e, SIGKILL);
      }
      if (e->drain_by_ms && e->reaped && now >= e->drain_by_ms) cut_output(e);
    }
    finish_done(&a);
    flush(&a);
  }
}
