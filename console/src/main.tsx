import '@xterm/xterm/css/xterm.css';
import './styles.css';
import { render } from 'preact';
import { installStyleNonce } from './csp.ts';
import { Hub } from './api/hub.ts';
import { Session } from './api/session.ts';
import { App } from './app.tsx';
import { Services } from './hooks.ts';

// Before anything creates a <style> element (xterm.js does).
installStyleNonce(document);

const session = new Session();
const hub = new Hub(session);
const root = document.getElementById('app');
if (root)
  render(
    <Services.Provider value={{ session, hub }}>
      <App />
    </Services.Provider>,
    root,
  );
