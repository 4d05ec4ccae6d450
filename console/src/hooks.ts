import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { ChannelListener, ChannelMessage, Hub } from './api/hub.ts';
import type { Session } from './api/session.ts';

export interface AppServices {
  session: Session;
  hub: Hub;
}

export const Services = createContext<AppServices | null>(null);

export function useServices(): AppServices {
  const s = useContext(Services);
  if (!s) throw new Error('useServices outside <Services.Provider>');
  return s;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` when `key` changes and every `intervalMs` (0: once), keeping the last good value
 * while a reload runs. Requests of a previous key are aborted.
 */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, key: string, intervalMs = 0): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    setData(null);
  }, [key]);
  useEffect(() => {
    const ac = new AbortController();
    setLoading(true);
    loadRef.current(ac.signal).then(
      (v) => {
        if (ac.signal.aborted) return;
        setData(v);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (ac.signal.aborted) return;
        setError(err instanceof Error ? err.message : String(err));
        setLoading(false);
      },
    );
    const timer = intervalMs > 0 ? setTimeout(() => setTick((t) => t + 1), intervalMs) : null;
    return () => {
      ac.abort();
      if (timer) clearTimeout(timer);
    };
  }, [key, tick, intervalMs]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** Listens to a hub channel while the component is mounted. */
export function useChannel(channel: string, onMessage: (m: ChannelMessage) => void, onSubscribed?: ChannelListener['onSubscribed']): void {
  const { hub } = useServices();
  const ref = useRef({ onMessage, onSubscribed });
  ref.current = { onMessage, onSubscribed };
  useEffect(
    () =>
      hub.subscribe(channel, {
        onMessage: (m) => ref.current.onMessage(m),
        onSubscribed: (cursor, resumed) => ref.current.onSubscribed?.(cursor, resumed),
      }),
    [hub, channel],
  );
}

/** The hash route: `#/sandboxes/sbx_…?x=1` → path `/sandboxes/sbx_…` and its query. */
export interface Route {
  path: string;
  query: URLSearchParams;
}

const parseHash = (hash: string): Route => {
  const raw = hash.replace(/^#/, '') || '/events';
  const [path = '/events', query = ''] = raw.split('?', 2);
  return { path, query: new URLSearchParams(query) };
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

export const navigate = (path: string): void => {
  location.hash = `#${path}`;
};

/** Calls `fn` and reports its error as a message, for buttons that act. */
export function useAction(): { busy: boolean; error: string | null; run: (fn: () => Promise<unknown>) => Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run };
}
