"""Runs a command on a real pseudo-terminal, for tests of interactive programs.

Usage: python3 pty.py ROWS COLS -- COMMAND [ARGS...]

The command gets a new session whose controlling terminal is the pty (so raw mode, SIGWINCH and
Ctrl-C behave as in a terminal emulator). Everything the command writes to the terminal is copied
to stdout. stdin carries control lines, one JSON object each:
  {"write": "text"}            keystrokes to type (e.g. "\\u0003" for Ctrl-C)
  {"resize": [rows, cols]}     change the window size (the kernel sends SIGWINCH)
This process exits with the command's exit status (128+N when a signal N killed it).
"""
import errno
import fcntl
import json
import os
import select
import struct
import sys
import termios


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def main():
    sep = sys.argv.index("--")
    rows, cols = int(sys.argv[1]), int(sys.argv[2])
    argv = sys.argv[sep + 1:]
    master, slave = os.openpty()
    set_size(slave, rows, cols)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(master)
        if slave > 2:
            os.close(slave)
        os.execvp(argv[0], argv)
    os.close(slave)
    control = b""
    stdin_open = True
    while True:
        fds = [master] + ([0] if stdin_open else [])
        ready, _, _ = select.select(fds, [], [])
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                break
            os.write(1, data)
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                stdin_open = False
                continue
            control += chunk
            while b"\n" in control:
                line, control = control.split(b"\n", 1)
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "write" in msg:
                    os.write(master, msg["write"].encode())
                if "resize" in msg:
                    set_size(master, msg["resize"][0], msg["resize"][1])
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status))


main()
