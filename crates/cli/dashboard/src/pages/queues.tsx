// Queues: what runs, what waits and in which order, and why each waiting run waits.
import { useEffect, useState } from 'preact/hooks';
import { get, QueueLine } from '../api';
import { RunTable, runHref, useNow } from '../components';
import type { Scope } from '../main';

export function Queues({ scope }: { scope: Scope }) {
  const [lines, setLines] = useState<QueueLine[] | null>(null);
  const [scoped, setScoped] = useState(false);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const now = useNow();
  const namespace = scope.all ? '' : scope.namespace;

  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Read again 5 s after the last answer came (never two reads of one tab at once).
    const again = () => {
      if (!cancelled) timer = setTimeout(() => setTick((t) => t + 1), 5000);
    };
    get<{ queues: QueueLine[]; scoped: boolean }>('/api/queues', { namespace })
      .then((a) => {
        if (cancelled) return;
        setLines(a.queues);
        setScoped(a.scoped);
        setError('');
      })
      .catch((e) => !cancelled && setError(String(e.message ?? e)))
      .finally(again);
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  }, [namespace, tick]);

  if (error) return <main class="page"><p class="error" role="alert">{error}</p></main>;
  if (!lines) return <main class="page"><p class="muted">Loading…</p></main>;
  if (lines.length === 0) return <main class="page"><p class="muted empty">No queue here, and no run waiting or running.</p></main>;
  return (
    <main class="page">
      {lines.map((line) => (
        <section class="queue" data-queue={`${line.namespace}/${line.name}`}>
          <h2>
            {line.name ? `${line.namespace}/${line.name}` : `Runs without a queue (the operator-wide limit${scoped ? '; counted in this namespace only' : ''})`}{' '}
            <span class="muted">
              {line.running.length} running{line.maxRunning !== undefined ? ` of ${line.maxRunning}` : ''} · {line.waitingTotal} waiting
            </span>
          </h2>
          {line.running.length > 0 && <RunTable rows={line.running} now={now} showNamespace={false} />}
          {line.waiting.length > 0 && (
            <table class="waiting">
              <thead><tr><th>#</th><th>Run</th><th>Priority</th><th>Why it waits</th></tr></thead>
              <tbody>
                {line.waiting.map((w) => (
                  <tr><td>{w.position}</td><td><a href={runHref(w.row)}>{w.row.name}</a></td><td>{w.row.priority}</td><td>{w.why}</td></tr>
                ))}
              </tbody>
            </table>
          )}
          {line.waitingTotal > line.waiting.length && <p class="muted">… and {line.waitingTotal - line.waiting.length} more waiting.</p>}
          {line.running.length === 0 && line.waitingTotal === 0 && <p class="muted">Idle: nothing running or waiting.</p>}
        </section>
      ))}
    </main>
  );
}
