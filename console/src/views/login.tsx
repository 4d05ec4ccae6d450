import { useState } from 'preact/hooks';
import { useServices } from '../hooks.ts';
import { ErrorNote } from '../ui/bits.tsx';

/** Username and password, sent once to `POST /v1/auth/login`; the tokens stay in memory (api/session.ts). */
export function Login(props: { onLoggedIn: () => void }) {
  const { session } = useServices();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const field = (name: string) => {
      const v = form.get(name);
      return typeof v === 'string' ? v : '';
    };
    const workspace = field('workspace').trim();
    setBusy(true);
    setError(null);
    try {
      await session.login(field('username'), field('password'), workspace || undefined);
      props.onLoggedIn();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="login-form" onSubmit={(e) => void submit(e)} autocomplete="on">
        <h1>Director</h1>
        <p class="muted">Security and operations console</p>
        <label>
          Username
          <input name="username" autocomplete="username" required autofocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required />
        </label>
        <label>
          Workspace <span class="muted">(optional)</span>
          <input name="workspace" autocomplete="off" placeholder="default" />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ErrorNote error={error} />
      </form>
    </main>
  );
}
