// The dashboard: a hash router over four pages, the namespace scope shared by all of them.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Context, get, post, Refused } from './api';
import { Runs } from './pages/runs';
import { Run } from './pages/run';
import { Queues } from './pages/queues';
import { StatsPage } from './pages/stats';
import './style.css';
import 'uplot/dist/uPlot.min.css';

/** The part of the location after `#`: a path and its query. */
export interface Route {
  path: string[];
  query: URLSearchParams;
}

/** A path segment decoded, or as written when it is not valid percent-encoding (a hand-edited link). */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function currentRoute(): Route {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?', 2);
  return {
    path: (path ?? '').split('/').filter((p) => p !== '').map(decoded),
    query: new URLSearchParams(query ?? ''),
  };
}

/** The namespace the pages look at: one namespace, or every one (`*`). */
export interface Scope {
  namespace: string;
  all: boolean;
}

function App() {
  const [route, setRoute] = useState<Route>(currentRoute());
  const [context, setContext] = useState<Context | null>(null);
  const [error, setError] = useState<string>('');
  const [scope, setScope] = useState<Scope>({ namespace: '', all: false });
  const [draft, setDraft] = useState('');
  const [signIn, setSignIn] = useState(false);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    get<Context>('/api/context')
      .then((c) => {
        setContext(c);
        const ns = currentRoute().query.get('ns');
        const initial = ns === '*' ? { namespace: c.namespace, all: true } : { namespace: ns || c.namespace, all: false };
        setScope(initial);
        setDraft(initial.namespace);
      })
      .catch((e) => {
        // A dashboard for many users asks who you are: a bearer token the API server accepts.
        if (e instanceof Refused && e.status === 401) setSignIn(true);
        else setError(String(e.message ?? e));
      });
  }, [attempt]);

  if (signIn) return <SignIn onDone={() => { setSignIn(false); setAttempt((a) => a + 1); }} />;
  if (error) return <main class="page"><p class="error">{error}</p></main>;
  if (!context) return <main class="page"><p class="muted">Connecting…</p></main>;

  const [page, ...rest] = route.path;
  const tab = (href: string, label: string, active: boolean) => (
    <a href={href} class={active ? 'tab active' : 'tab'}>{label}</a>
  );
  return (
    <>
      <header class="top">
        <span class="brand">crew</span>
        {tab('#/', 'Runs', !page || page === 'runs' || page === 'run')}
        {tab('#/queues', 'Queues', page === 'queues')}
        {tab('#/stats', 'Statistics', page === 'stats')}
        <form
          class="scope"
          onSubmit={(e) => {
            e.preventDefault();
            setScope({ namespace: draft.trim() || context.namespace, all: false });
          }}
        >
          <label>
            Namespace{' '}
            <input
              name="namespace"
              value={draft}
              disabled={scope.all}
              onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
              onBlur={() => setScope({ namespace: draft.trim() || context.namespace, all: scope.all })}
            />
          </label>
          <label>
            <input
              type="checkbox"
              name="all-namespaces"
              checked={scope.all}
              onChange={(e) => setScope({ namespace: scope.namespace, all: (e.target as HTMLInputElement).checked })}
            />{' '}
            all namespaces
          </label>
        </form>
        <span class="server muted" title="API server">{context.server}</span>
        {context.users && (
          <button
            class="link signout"
            name="sign-out"
            onClick={() => void post('/api/logout').then(() => location.reload())}
          >
            sign out
          </button>
        )}
      </header>
      {page === 'run' && rest.length >= 2 ? (
        <Run namespace={rest[0]} name={rest[1]} archived={route.query.get('archived') === '1'} context={context} />
      ) : page === 'queues' ? (
        <Queues scope={scope} />
      ) : page === 'stats' ? (
        <StatsPage scope={scope} context={context} />
      ) : (
        <Runs scope={scope} context={context} />
      )}
    </>
  );
}

/** Sign-in of a dashboard for many users: the token goes to the server once, which keeps it in an HttpOnly cookie. */
function SignIn({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  return (
    <main class="page signin">
      <h1>Sign in</h1>
      <p class="muted">
        A bearer token the cluster accepts, e.g. <code>kubectl create token NAME</code> or your OIDC ID token. Every
        request is made with it: you see what your own RBAC allows.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          post('/api/login', { token: token.trim() })
            .then(onDone)
            .catch((err) => setError(String(err.message ?? err)));
        }}
      >
        <textarea name="token" rows={4} cols={80} value={token} onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)} />
        <div><button type="submit">Sign in</button></div>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
    </main>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
