// The run list: filters, server-side pages, rows that move live.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Context, get, PHASES, Refused, Row, RunsPage } from '../api';
import { RunTable, useNow } from '../components';
import { Change, LiveState, watchRuns } from '../live';
import type { Scope } from '../main';

type Source = 'live' | 'archived' | 'all';
const PAGE = 50;

interface Filters {
  selector: string;
  phase: string;
  queue: string;
  source: Source;
}

export function Runs({ scope, context }: { scope: Scope; context: Context }) {
  const [filters, setFilters] = useState<Filters>({ selector: '', phase: '', queue: '', source: 'live' });
  const [draft, setDraft] = useState<Filters>(filters);
  // The continue tokens of the pages before this one (the first is '').
  const [pages, setPages] = useState<string[]>(['']);
  const [rows, setRows] = useState<Row[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [live, setLive] = useState<LiveState | 'off'>('off');
  const [reload, setReload] = useState(0);
  const [visible, setVisible] = useState(!document.hidden);
  const rowsRef = useRef<Row[]>([]);
  rowsRef.current = rows;
  // "Live and archived" pages the live runs first: an archived run still in the cluster was seen there already.
  const seenLive = useRef<Set<string>>(new Set());
  const now = useNow();

  const namespace = scope.all ? '' : scope.namespace;
  const token = pages[pages.length - 1];
  const query = {
    namespace,
    selector: filters.selector,
    phase: filters.phase,
    queue: filters.queue,
    source: filters.source,
  };

  useEffect(() => {
    setPages(['']);
    seenLive.current = new Set();
  }, [namespace, filters]);

  // A hidden tab holds no stream (a browser allows few connections per server); shown again, it reads afresh.
  useEffect(() => {
    const onVisibility = () => setVisible(!document.hidden);
    document.addEventListener('visibilitychange', onVisibility);
    return () => document.removeEventListener('visibilitychange', onVisibility);
  }, []);

  useEffect(() => {
    let stop: (() => void) | undefined;
    let resetTimer: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    setLoading(true);
    get<RunsPage>('/api/runs', { ...query, limit: String(PAGE), continue: token || undefined })
      .then((page) => {
        if (cancelled) return;
        for (const r of page.items) if (!r.archived) seenLive.current.add(r.uid);
        setRows(page.items.filter((r) => !r.archived || !seenLive.current.has(r.uid)));
        setNext(page.continue);
        setError('');
        setLoading(false);
        // Archived runs do not change: only the live list is watched, while the tab is seen.
        if (filters.source !== 'archived' && page.resourceVersion && visible) {
          stop = watchRuns(
            { namespace, selector: filters.selector, phase: filters.phase, queue: filters.queue, resourceVersion: page.resourceVersion },
            (change: Change) => setRows(apply(rowsRef.current, change.type, change.row, pages.length === 1)),
            // Too old to resume: read the page again, after a pause (never a tight loop).
            () => {
              setLive('reconnecting');
              resetTimer = setTimeout(() => setReload((n) => n + 1), 2000);
            },
            setLive,
            (message) => {
              setLive('off');
              setError(message);
            },
          );
        } else {
          setLive('off');
        }
      })
      .catch((e) => {
        if (cancelled) return;
        // A continue token expires after a few minutes: start again at the first page.
        if (e instanceof Refused && e.status === 410 && token) {
          setPages(['']);
          return;
        }
        setRows([]);
        setNext(undefined);
        setError(String(e.message ?? e));
        setLoading(false);
        setLive('off');
      });
    return () => {
      cancelled = true;
      stop?.();
      if (resetTimer) clearTimeout(resetTimer);
    };
  }, [namespace, filters, token, reload, visible]);

  const field = (key: keyof Filters) => ({
    value: draft[key],
    onInput: (e: Event) => setDraft({ ...draft, [key]: (e.target as HTMLInputElement).value }),
  });

  return (
    <main class="page">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilters({ ...draft });
        }}
      >
        <label>
          Labels <input name="selector" placeholder="team=a,tier!=batch" {...field('selector')} />
        </label>
        <label>
          Phase{' '}
          <select name="phase" {...field('phase')} onChange={(e) => setFilters({ ...draft, phase: (e.target as HTMLSelectElement).value })}>
            <option value="">any</option>
            {PHASES.map((p) => (
              <option value={p}>{p}</option>
            ))}
          </select>
        </label>
        <label>
          Queue <input name="queue" {...field('queue')} />
        </label>
        <label>
          Show{' '}
          <select
            name="source"
            {...field('source')}
            onChange={(e) => setFilters({ ...draft, source: (e.target as HTMLSelectElement).value as Source })}
          >
            <option value="live">live runs</option>
            <option value="archived" disabled={!context.archive}>archived runs</option>
            <option value="all" disabled={!context.archive}>live and archived</option>
          </select>
        </label>
        <button type="submit">Apply</button>
        <span class={`live live-${live}`} title="Rows update as the API server reports changes">
          {live === 'live' ? '● live' : live === 'off' ? '' : `○ ${live}…`}
        </span>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {!error && !loading && rows.length === 0 && <p class="muted empty">No runs here.</p>}
      {rows.length > 0 && <RunTable rows={rows} now={now} showNamespace={scope.all} />}
      <nav class="pager">
        <button disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>
          ← Previous
        </button>
        <span class="muted">page {pages.length}</span>
        <button disabled={!next} onClick={() => next && setPages([...pages, next])}>
          Next →
        </button>
      </nav>
    </main>
  );
}

/** The rows after one change: an update in place; a new run on the first page goes on top; a deleted one goes. */
/** The rows after one change: a row of this page is updated in place or removed; a new run goes on top of the first
 * page. Changes of runs on other pages (the watch covers the whole filter) leave this page alone. */
export function apply(rows: Row[], type: Change['type'], row: Row, firstPage: boolean): Row[] {
  const at = rows.findIndex((r) => r.uid === row.uid);
  if (type === 'deleted') return at < 0 ? rows : rows.filter((_, i) => i !== at);
  if (at >= 0) return rows.map((r, i) => (i === at ? row : r));
  return type === 'added' && firstPage ? [row, ...rows] : rows;
}
