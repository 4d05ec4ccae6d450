import { useEffect, useState } from 'preact/hooks';
import type { HubStatus } from './api/hub.ts';
import { can } from './api/session.ts';
import { navigate, useRoute, useServices } from './hooks.ts';
import { Login } from './views/login.tsx';
import { match, VIEWS } from './views/registry.tsx';

/** The login form until a session exists, then the console; a session that ends brings the form back. */
export function App() {
  const { session, hub } = useServices();
  const [loggedIn, setLoggedIn] = useState(session.loggedIn);
  useEffect(() => {
    const off = () => {
      hub.stop();
      setLoggedIn(false);
    };
    session.addEventListener('logout', off);
    return () => session.removeEventListener('logout', off);
  }, [session, hub]);
  if (!loggedIn)
    return (
      <Login
        onLoggedIn={() => {
          hub.start();
          setLoggedIn(true);
        }}
      />
    );
  return <Shell />;
}

function HubIndicator() {
  const { hub } = useServices();
  const [status, setStatus] = useState<HubStatus>(hub.status);
  useEffect(() => {
    const on = () => setStatus(hub.status);
    hub.addEventListener('status', on);
    return () => hub.removeEventListener('status', on);
  }, [hub]);
  const text = { live: 'live', connecting: 'connecting…', offline: 'offline, reconnecting' }[status];
  return (
    <span class={`hub hub-${status}`} title={hub.lastError ?? undefined} data-testid="hub-status">
      {text}
    </span>
  );
}

function Shell() {
  const { session } = useServices();
  const route = useRoute();
  const me = session.me!;
  const found = match(route.path);
  const nav = VIEWS.filter((v) => v.nav && can(me, v.scope));
  useEffect(() => {
    if (!found && nav[0]) navigate(nav[0].path);
  }, [found, nav]);
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/events">
          Director
        </a>
        <nav>
          {nav.map((v) => (
            <a key={v.path} href={`#${v.path}`} class={route.path === v.path || route.path.startsWith(`${v.path}/`) ? 'active' : ''}>
              {v.title}
            </a>
          ))}
        </nav>
        <div class="who">
          <HubIndicator />
          <span data-testid="whoami">
            {me.username} · {me.role} · <span class="mono">{me.workspace}</span>
          </span>
          <button type="button" onClick={() => void session.logout()}>
            Log out
          </button>
        </div>
      </header>
      <main class="content">
        {found ? (
          can(me, found.view.scope) ? (
            found.view.render(found.params, route)
          ) : (
            <p class="error">Your role may not see this view (it needs {found.view.scope}).</p>
          )
        ) : null}
      </main>
    </div>
  );
}
