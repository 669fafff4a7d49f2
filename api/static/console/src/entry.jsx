// The operators' console: GraphiQL, the explorer plugin, a sign-in helper and the daily jobs'
// examples, bundled once into ../graphiql.js and ../graphiql.css (see build.sh). Everything the page
// loads comes from the mallpoints server itself; the bundle makes no other request.
import React, { useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { useEditorContext } from '@graphiql/react';
import { explorerPlugin } from '@graphiql/plugin-explorer';
import 'graphiql/graphiql.css';
import '@graphiql/plugin-explorer/dist/style.css';
import './console.css';

const config = JSON.parse(document.getElementById('mallpoints-console-config').textContent);

function parseHeaders(text) {
  try {
    const value = JSON.parse(text || '{}');
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch (e) {
    return {};
  }
}

function withToken(headersText, token) {
  const headers = parseHeaders(headersText);
  delete headers.authorization;
  if (token) headers.Authorization = `Bearer ${token}`;
  else delete headers.Authorization;
  return JSON.stringify(headers, null, 2);
}

const LOGIN = `mutation ConsoleSignIn($input: OperatorLoginInput!) {
  operatorLogin(input: $input) { token operator { username } userErrors { code message } }
}`;

// The headers a new tab ("+") starts with: those of the last sign-in, else the last ones GraphiQL stored.
let setDefaultHeaders = () => {};

function storedHeaders() {
  try {
    return window.localStorage.getItem('graphiql:headers') || undefined;
  } catch (e) {
    return undefined;
  }
}

function SignIn() {
  const editors = useEditorContext({ nonNull: true });
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [status, setStatus] = useState('');

  async function submit(event) {
    event.preventDefault();
    setStatus('Signing in…');
    try {
      const response = await fetch(config.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query: LOGIN, operationName: 'ConsoleSignIn', variables: { input: { username, password } } }),
      });
      const body = await response.json();
      const payload = body.data && body.data.operatorLogin;
      if (!payload) {
        setStatus((body.errors && body.errors[0] && body.errors[0].message) || `HTTP ${response.status}`);
        return;
      }
      if (payload.userErrors.length) {
        setStatus(payload.userErrors.map(e => e.message).join('; '));
        return;
      }
      const headers = withToken(editors.headerEditor.getValue(), payload.token);
      editors.headerEditor.setValue(headers);
      setDefaultHeaders(headers);
      setPassword('');
      setStatus(`Signed in as ${payload.operator ? payload.operator.username : username}: the token is in the Headers tab.`);
    } catch (e) {
      setStatus(`Sign-in failed: ${e.message}`);
    }
  }

  function signOut() {
    const headers = withToken(editors.headerEditor.getValue(), null);
    editors.headerEditor.setValue(headers);
    setDefaultHeaders(headers);
    setStatus('Signed out: the Authorization header is removed.');
  }

  return (
    <div className="mp-panel">
      <div className="graphiql-doc-explorer-title">Sign in</div>
      <p>Puts <code>Authorization: Bearer …</code> in the Headers tab (kept in this browser by GraphiQL);
        new tabs and the examples take it along.</p>
      <form onSubmit={submit} aria-label="operator sign-in">
        <label>Username<input name="username" autoComplete="username" value={username}
          onChange={e => setUsername(e.target.value)} /></label>
        <label>Password<input name="password" type="password" autoComplete="current-password" value={password}
          onChange={e => setPassword(e.target.value)} /></label>
        <button type="submit" className="graphiql-button">Sign in</button>{' '}
        <button type="button" className="graphiql-button" onClick={signOut}>Sign out</button>
      </form>
      <p className="mp-status" role="status">{status}</p>
    </div>
  );
}

function Examples() {
  const editors = useEditorContext({ nonNull: true });

  function open(example) {
    const headers = editors.headerEditor ? editors.headerEditor.getValue() : '';
    editors.addTab();
    // addTab() resets the editors to the new tab; fill them on the next tick.
    setTimeout(() => {
      editors.queryEditor.setValue(example.query);
      editors.variableEditor.setValue(example.variables);
      editors.headerEditor.setValue(headers);
    }, 0);
  }

  return (
    <div className="mp-panel">
      <div className="graphiql-doc-explorer-title">Daily jobs</div>
      <p>Each opens in a new tab with its variables; edit them, then run.</p>
      <ul className="mp-examples">
        {config.examples.map(example => (
          <li key={example.name}>
            <button type="button" className="graphiql-button" data-example={example.name}
              onClick={() => open(example)}>{example.title}</button>
            <div className="mp-hint">{example.description}</div>
          </li>
        ))}
      </ul>
    </div>
  );
}

const KeyIcon = () => (
  <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" strokeWidth="1.5" aria-hidden="true">
    <circle cx="8" cy="15" r="4" /><path d="M11 12l9-9M17 6l3 3M15 8l2 2" />
  </svg>
);
const ListIcon = () => (
  <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" strokeWidth="1.5" aria-hidden="true">
    <path d="M8 6h13M8 12h13M8 18h13M3 6h.01M3 12h.01M3 18h.01" />
  </svg>
);

const plugins = [
  { title: 'Sign in', icon: KeyIcon, content: SignIn },
  { title: 'Examples', icon: ListIcon, content: Examples },
  explorerPlugin({ showAttribution: false }),
];

const fetcher = createGraphiQLFetcher({ url: config.endpoint });

function Console() {
  const [defaultHeaders, setHeaders] = useState(storedHeaders);
  setDefaultHeaders = setHeaders;
  return (
    <GraphiQL
      fetcher={fetcher}
      plugins={plugins}
      shouldPersistHeaders={true}
      defaultHeaders={defaultHeaders}
      defaultEditorToolsVisibility="headers"
      defaultTabs={[{ query: config.welcome }]}
    />
  );
}

createRoot(document.getElementById('graphiql')).render(<Console />);
