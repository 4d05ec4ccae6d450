/* Frames to Director and the one structured message from it (exec). */
#include "agent.h"

#include <stdlib.h>
#include <string.h>

int buf_put(struct buf *b, const void *d, size_t n) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->len + n > b->cap) {
    if (b->off > 0) {
      memmove(b->p, b->p + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    if (b->len + n > b->cap) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + n) cap *= 2;
      unsigned char *p = realloc(b->p, cap);
      if (!p) return -1;
      b->p = p;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

void buf_drop(struct buf *b, size_t n) {
  b->off += n;
  if (b->off >= b->len) b->off = b->len = 0;
}

void buf_free(struct buf *b) {
  free(b->p);
  b->p = NULL;
  b->off = b->len = b->cap = 0;
}

void put_u16(unsigned char *p, uint16_t v) {
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 0xff;
}

uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

uint32_t get_u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Queues a frame; the main loop writes it. Without a channel nothing is queued. */
void send_frame(struct agent *a, uint8_t type, uint32_t id, const void *payload, size_t n) {
  if (a->sock < 0) return;
  unsigned char h[FRAME_HEADER];
  put_u32(h, (uint32_t)n);
  h[4] = type;
  put_u32(h + 5, id);
  /* Out of memory: the frame is lost; Director notices a missing exit through its own timers. */
  if (buf_put(&a->tx, h, sizeof h) == 0 && n) buf_put(&a->tx, payload, n);
}

void send_u32(struct agent *a, uint8_t type, uint32_t id, uint32_t v) {
  unsigned char p[4];
  put_u32(p, v);
  send_frame(a, type, id, p, sizeof p);
}

void send_error(struct agent *a, uint32_t id, const char *msg) { send_frame(a, F_ERROR, id, msg, strlen(msg)); }

void send_exit(struct agent *a, uint32_t id, uint8_t kind, int32_t value, int timed_out) {
  unsigned char p[6];
  p[0] = kind;
  put_u32(p + 1, (uint32_t)value);
  p[5] = timed_out ? 1 : 0;
  send_frame(a, F_EXIT, id, p, sizeof p);
}

struct reader {
  const unsigned char *p;
  size_t n, off;
  int bad;
};

static uint32_t rd_u32(struct reader *r) {
  if (r->bad || r->n - r->off < 4) return r->bad = 1, 0;
  uint32_t v = get_u32(r->p + r->off);
  r->off += 4;
  return v;
}

static char *rd_str(struct reader *r) {
  uint32_t len = rd_u32(r);
  if (r->bad || r->n - r->off < len || memchr(r->p + r->off, 0, len)) return r->bad = 1, NULL;
  char *s = malloc((size_t)len + 1);
  if (!s) return r->bad = 1, NULL;
  memcpy(s, r->p + r->off, len);
  s[len] = 0;
  r->off += len;
  return s;
}

static char **rd_list(struct reader *r, uint32_t max) {
  uint32_t count = rd_u32(r);
  if (r->bad || count > max || count > (r->n - r->off) / 4) return r->bad = 1, NULL;
  char **list = calloc((size_t)count + 1, sizeof *list);
  if (!list) return r->bad = 1, NULL;
  for (uint32_t i = 0; i < count && !r->bad; i++) list[i] = rd_str(r);
  return list;
}

static void free_list(char **l) {
  if (!l) return;
  for (char **s = l; *s; s++) free(*s);
  free(l);
}

void exec_req_free(struct exec_req *r) {
  free_list(r->argv);
  free_list(r->env);
  free(r->workdir);
  memset(r, 0, sizeof *r);
}

/*
 * exec payload: u8 flags (1 tty, 2 stdin, 4 finish on disconnect, 8 the agent's own `tree`: argv[1] is
 * `tree`, no tty), u32 timeout ms (0 none), u16 cols, u16 rows,
 * u32 argc + argc strings, u32 envc + envc "KEY=VALUE" strings, one workdir string (empty:
 * the container's). A string is u32 length + bytes, no NUL. Returns 0, or -1 when malformed.
 */
int parse_exec(const unsigned char *p, size_t n, struct exec_req *out) {
  struct reader r = {p, n, 0, 0};
  struct exec_req q = {0};
  if (n < 9) return -1;
  uint8_t flags = p[0];
  q.tty = flags & 1;
  q.stdin_open = (flags >> 1) & 1;
  q.finish_on_disconnect = (flags >> 2) & 1;
  q.tree = (flags >> 3) & 1;
  q.timeout_ms = get_u32(p + 1);
  q.cols = get_u16(p + 5);
  q.rows = get_u16(p + 7);
  r.off = 9;
  q.argv = rd_list(&r, 65536);
  q.env = rd_list(&r, 65536);
  q.workdir = rd_str(&r);
  if (!r.bad && ((flags & ~15u) || !q.argv[0] || r.off != n)) r.bad = 1;
  if (!r.bad && q.tree && (q.tty || !q.argv[1] || strcmp(q.argv[1], "tree"))) r.bad = 1;
  for (char **e = q.env; !r.bad && e && *e; e++) {
    char *eq = strchr(*e, '=');
    if (!eq || eq == *e) r.bad = 1;
  }
  if (!r.bad && q.workdir[0] == 0) {
    free(q.workdir);
    q.workdir = NULL;
  }
  if (r.bad) {
    exec_req_free(&q);
    return -1;
  }
  *out = q;
  return 0;
}
