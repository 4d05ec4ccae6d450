/*
 * Director's exec agent: the main process of a sandbox (under Docker's init). It connects
 * once to the Unix socket Director listens on (mounted read-only at /.director/run), then
 * runs the commands Director sends, each in its own session and process group, and streams
 * their output and exit status back. Wire format: docs/agent.md and
 * runtime/sandbox/agent/protocol.ts (the two must agree).
 */
#ifndef DIRECTOR_AGENT_H
#define DIRECTOR_AGENT_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_PROTOCOL 1
#define AGENT_SOCKET "/.director/run/agent.sock"
#define FRAME_HEADER 9                  /* u32 payload length, u8 type, u32 id (little-endian) */
#define MAX_HOST_FRAME (8u << 20)       /* largest payload Director sends (an exec with a long argv) */
#define MAX_CHUNK (64u << 10)           /* largest output chunk per frame */
#define INITIAL_WINDOW (256u << 10)     /* output bytes an exec may send before Director grants more */
#define TX_HIGH (1u << 20)              /* queued bytes to Director beyond which no output is read */
#define MAX_EXECS 1024
#define MARKER_ENV "DIRECTOR_EXEC_ID"
#define DRAIN_AFTER_KILL_MS 200

enum frame_type {
  /* Director -> agent */
  F_EXEC = 0x01,
  F_STDIN = 0x02, /* empty payload: end of input */
  F_KILL = 0x03,
  F_RESIZE = 0x04,
  F_WINDOW = 0x05,
  F_PING = 0x06,
  /* agent -> Director */
  F_HELLO = 0x81,
  F_STARTED = 0x82,
  F_STDOUT = 0x83,
  F_STDERR = 0x84,
  F_EXIT = 0x85,
  F_ERROR = 0x86,
  F_STDIN_ACK = 0x87,
  F_PONG = 0x88,
};

enum exit_kind { EXIT_CODE = 0, EXIT_SIGNAL = 1, EXIT_FAILED = 2 };

/* Bytes in p[off, len). */
struct buf {
  unsigned char *p;
  size_t off, len, cap;
};
int buf_put(struct buf *b, const void *d, size_t n);
void buf_drop(struct buf *b, size_t n);
static inline size_t buf_size(const struct buf *b) { return b->len - b->off; }
void buf_free(struct buf *b);

struct exec_req {
  int tty, stdin_open, finish_on_disconnect;
  int tree; /* flag 8: argv is the agent's own `tree` mode, run by a fork of the agent without execve (run_tree in proc.c) */
  uint32_t timeout_ms;
  uint16_t cols, rows;
  char **argv; /* NULL-terminated */
  char **env;  /* NULL-terminated "KEY=VALUE" */
  char *workdir; /* NULL: the container's */
};
void exec_req_free(struct exec_req *r);

struct exec {
  uint32_t id;
  pid_t pid;
  int out[2];  /* stdout (the pty master with a tty), stderr; -1 once at end of file */
  int in;      /* stdin: pipe, or a duplicate of the pty master; -1 when closed or absent */
  int tty;
  int finish_on_disconnect; /* flag 4: a lost connection does not kill it (see detach_all) */
  struct buf input; /* stdin from Director not yet written */
  int input_eof;
  uint64_t window;
  int64_t deadline_ms; /* 0: none */
  int64_t drain_by_ms; /* after a SIGKILL: output still open then is cut (a process that escaped holds it) */
  int timed_out, reaped, status;
  char marker[33];
};

struct agent {
  int sock; /* -1: no channel */
  struct buf rx, tx;
  struct exec *execs[MAX_EXECS];
  int nexecs;
  char **env; /* the agent's own environment, the base of every exec's */
  pid_t command; /* the sandbox's command, 0 in plain serve mode */
  int command_status, command_done;
};

/* wire.c */
void put_u16(unsigned char *p, uint16_t v);
void put_u32(unsigned char *p, uint32_t v);
uint16_t get_u16(const unsigned char *p);
uint32_t get_u32(const unsigned char *p);
void send_frame(struct agent *a, uint8_t type, uint32_t id, const void *payload, size_t n);
void send_u32(struct agent *a, uint8_t type, uint32_t id, uint32_t v);
void send_error(struct agent *a, uint32_t id, const char *msg);
void send_exit(struct agent *a, uint32_t id, uint8_t kind, int32_t value, int timed_out);
int parse_exec(const unsigned char *p, size_t n, struct exec_req *r);

/* proc.c */
int64_t now_ms(void);
struct exec *find_exec(struct agent *a, uint32_t id);
void start_exec(struct agent *a, uint32_t id, struct exec_req *r);
void kill_exec(struct exec *e, int sig);
void cut_output(struct exec *e);
void kill_all(struct agent *a);
void detach_all(struct agent *a);
void reap(struct agent *a);
void exec_input(struct agent *a, struct exec *e, const unsigned char *p, size_t n);
void exec_resize(struct exec *e, uint16_t cols, uint16_t rows);
int exec_read(struct agent *a, struct exec *e, int which);
void exec_write(struct agent *a, struct exec *e);
void finish_done(struct agent *a);
pid_t spawn_command(struct agent *a, char **argv);

/* tree.c (with tree-path.c, tree-capture.c, tree-restore.c; tree.h): `director-agent tree ...`, the checkpoint reader (runtime/sandbox/mount-sync.ts). */
int tree_main(int argc, char **argv);

#endif
