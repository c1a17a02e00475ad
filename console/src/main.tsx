/**
 * The console's shell: sign-in with an API token (exchanged for an HttpOnly session cookie,
 * server/control/console.ts), the navigation between pages (the URL's hash, so that back and
 * forward and links work), and the signed-in caller's scopes deciding what is offered.
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, bindSession, call, type Session } from './api';
import { CampaignsPage } from './campaigns';
import { ErrorBox } from './components';
import { FunnelsPage } from './funnels';
import { PreviewPage } from './preview';
import { RuleSetsPage } from './rulesets';

const PAGES = [
  ['rulesets', 'Rule sets'],
  ['preview', 'Preview and what-if'],
  ['funnels', 'Funnels'],
  ['campaigns', 'Campaigns'],
] as const;
type Page = (typeof PAGES)[number][0];

const pageOf = (hash: string): Page => {
  const name = hash.replace(/^#\/?/, '');
  return (PAGES.find(([p]) => p === name)?.[0] ?? 'rulesets') as Page;
};

const has = (s: Session, scope: string) => s.scopes.includes('admin') || s.scopes.includes(scope);

function SignIn({ onSignedIn, reason }: { onSignedIn: (s: Session) => void; reason: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await call<Session>('/console/session', { body: { token } }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>Mindshare console</h1>
      {reason !== null && <p role="status">{reason}</p>}
      <form onSubmit={submit} class="form">
        <label>
          API token{' '}
          <input
            type="password"
            name="token"
            autoComplete="off"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            required
          />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
      <p class="hint">
        One of the server's API tokens (TOKENS). It is sent once; the browser keeps only a session cookie that
        scripts cannot read, valid for 8 hours.
      </p>
      <ErrorBox error={error} />
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [reason, setReason] = useState<string | null>(null);
  const [page, setPage] = useState<Page>(pageOf(location.hash));

  bindSession(session ?? null, () => {
    setReason('Your session ended: sign in again.');
    setSession(null);
  });

  useEffect(() => {
    call<Session>('/console/session')
      .then(setSession)
      .catch((e) => {
        if (!(e instanceof ApiError && e.status === 401))
          setReason(`Could not reach the server: ${e.message}`);
        setSession(null);
      });
    const onHash = () => setPage(pageOf(location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    const title = PAGES.find(([p]) => p === page)?.[1] ?? '';
    document.title = `${title} · Mindshare console`;
  }, [page]);

  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null) {
    return (
      <SignIn
        reason={reason}
        onSignedIn={(s) => {
          setReason(null);
          setSession(s);
        }}
      />
    );
  }
  const signOut = async () => {
    await call('/console/session', { method: 'DELETE' }).catch(() => undefined);
    setReason('Signed out.');
    setSession(null);
  };
  return (
    <>
      <button
        type="button"
        class="skip"
        onClick={() => {
          // Not a page of the hash router (#main would be): it moves the focus to the page.
          document.getElementById('main')?.focus();
        }}
      >
        Skip to the page
      </button>
      <header>
        <span class="brand">Mindshare</span>
        <nav aria-label="Pages">
          {PAGES.map(([p, title]) => (
            <a key={p} href={`#/${p}`} aria-current={page === p ? 'page' : undefined}>
              {title}
            </a>
          ))}
        </nav>
        <span class="who">
          {session.name}
          {session.open ? ' (no tokens configured)' : ''}{' '}
          {!session.open && (
            <button type="button" onClick={signOut}>
              Sign out
            </button>
          )}
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'rulesets' && <RuleSetsPage canWrite={has(session, 'rules:write')} />}
        {page === 'preview' && <PreviewPage />}
        {page === 'funnels' && <FunnelsPage />}
        {page === 'campaigns' && <CampaignsPage />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
