import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'preact/hooks';
import { TerminalSocket } from '../api/terminal.ts';
import { useServices } from '../hooks.ts';
import { Panel } from '../ui/bits.tsx';

type State = { kind: 'closed' } | { kind: 'connecting' } | { kind: 'open' } | { kind: 'ended'; message: string };

/** An interactive shell in the sandbox (xterm.js over the terminal WebSocket), opened on request. */
export function TerminalPanel(props: { sandboxId: string }) {
  const [state, setState] = useState<State>({ kind: 'closed' });
  const [session, setSession] = useState(0);
  const open = state.kind === 'connecting' || state.kind === 'open';
  return (
    <Panel
      title="Terminal"
      id="terminal"
      actions={
        open ? (
          <button type="button" onClick={() => setState({ kind: 'closed' })}>
            Close
          </button>
        ) : (
          <button
            type="button"
            class="primary"
            data-testid="open-terminal"
            onClick={() => {
              setSession((n) => n + 1);
              setState({ kind: 'connecting' });
            }}
          >
            Open terminal
          </button>
        )
      }
    >
      {open ? (
        <Xterm key={session} sandboxId={props.sandboxId} onState={setState} />
      ) : (
        <p class="muted">
          {state.kind === 'ended' ? `${state.message}. ` : ''}
          Opens <span class="mono">/bin/sh</span> as the sandbox user; closing the terminal ends the shell.
        </p>
      )}
      {state.kind === 'connecting' ? <p class="muted">Connecting…</p> : null}
    </Panel>
  );
}

function Xterm(props: { sandboxId: string; onState: (s: State) => void }) {
  const { session } = useServices();
  const host = useRef<HTMLDivElement>(null);
  const onState = useRef(props.onState);
  onState.current = props.onState;
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace',
      fontSize: 13,
      scrollback: 2000,
      theme: { background: '#0f1419', foreground: '#d6dde6' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    let ended = false;
    const socket = new TerminalSocket(
      session,
      props.sandboxId,
      { cols: term.cols, rows: term.rows },
      {
        onOutput: (bytes) => term.write(bytes),
        onReady: () => {
          onState.current({ kind: 'open' });
          fit.fit();
          socket.resize(term.cols, term.rows);
          term.focus();
        },
        onClose: (exitCode, reason) => {
          if (ended) return;
          ended = true;
          onState.current({
            kind: 'ended',
            message: exitCode === null ? `Terminal closed: ${reason}` : `The shell exited with ${exitCode}`,
          });
        },
      },
    );
    const input = term.onData((d) => socket.input(d));
    const resized = term.onResize(({ cols, rows }) => socket.resize(cols, rows));
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(el);
    return () => {
      ended = true;
      observer.disconnect();
      input.dispose();
      resized.dispose();
      socket.close();
      term.dispose();
    };
  }, [props.sandboxId, session]);
  return <div class="xterm-host" ref={host} data-testid="terminal" />;
}
