// One run: its summary, the step timeline, each step's progress, metrics, warnings and result, history, Events,
// Jobs, and (with --allow-actions) cancel / suspend / resume / rerun.
import { useEffect, useState } from 'preact/hooks';
import { Context, get, post, runPath, RunDetail } from '../api';
import { PhaseBadge, ProgressBar, duration, useNow } from '../components';
import { since, stamp } from '../format';
import { spans, Timeline } from '../timeline';
import { watchRuns } from '../live';

const ACTIONS = ['cancel', 'suspend', 'resume', 'rerun'] as const;

/** A result the worker posted (kept in a ConfigMap, or in the archive), read when asked for. */
function PostedResult({ namespace, name, step, size, archived }: { namespace: string; name: string; step: string; size: number; archived: boolean }) {
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState('');
  const load = () =>
    get<{ text: string; contentType: string }>(`${runPath(namespace, name)}/results/${encodeURIComponent(step)}`, {
      source: archived ? 'archived' : undefined,
    })
      .then((r) => setText(r.text))
      .catch((e) => setError(String(e.message ?? e)));
  if (text !== null) return <pre class="result posted">{text}</pre>;
  return (
    <span>
      <button class="link" name={`result-${step}`} onClick={() => void load()}>whole result</button>{' '}
      <span class="muted">({size} bytes)</span>
      {error && <div class="error">{error}</div>}
    </span>
  );
}

export function Run({ namespace, name, archived, context }: { namespace: string; name: string; archived: boolean; context: Context }) {
  const [detail, setDetail] = useState<RunDetail | null>(null);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [tick, setTick] = useState(0);
  // Bumped when the run's watch must start again (its version too old): a new stream from the next read.
  const [generation, setGeneration] = useState(0);
  const now = useNow();

  useEffect(() => {
    let cancelled = false;
    get<RunDetail>(runPath(namespace, name), { source: archived ? 'archived' : undefined })
      .then((d) => {
        if (cancelled) return;
        setDetail(d);
        setError('');
      })
      .catch((e) => !cancelled && setError(String(e.message ?? e)));
    return () => {
      cancelled = true;
    };
  }, [namespace, name, archived, tick]);

  // A live run is watched (its own changes pushed over the same event stream as the list) and read again, at most
  // once a second, when it changes.
  const version = detail?.resourceVersion;
  const finished = !detail || ['Succeeded', 'Failed', 'Cancelled'].includes(detail.row.phase);
  useEffect(() => {
    if (archived || !version || finished) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = watchRuns(
      { namespace, name, resourceVersion: version },
      () => {
        timer ??= setTimeout(() => {
          timer = undefined;
          setTick((t) => t + 1);
        }, 1000);
      },
      () => {
        setTick((t) => t + 1);
        setTimeout(() => setGeneration((g) => g + 1), 2000);
      },
      () => undefined,
      (message) => setNotice(message),
    );
    return () => {
      stop();
      if (timer) clearTimeout(timer);
    };
  }, [namespace, name, archived, version === undefined, finished, generation]);

  if (error) return <main class="page"><p class="error" role="alert">{error}</p></main>;
  if (!detail) return <main class="page"><p class="muted">Loading…</p></main>;
  const row = detail.row;

  const act = async (action: string) => {
    try {
      const answer = await post<{ message: string }>(`${runPath(namespace, name)}/${action}`);
      setNotice(answer.message);
      setTick((t) => t + 1);
    } catch (e) {
      setNotice(String((e as Error).message));
    }
  };

  return (
    <main class="page run">
      <h1>
        <span class="muted">{row.namespace}/</span>
        {row.name} <PhaseBadge phase={row.phase} />
        {row.archived && <span class="tag">archived</span>}
      </h1>
      <section class="summary">
        <ProgressBar percent={row.percent} phase={row.phase} />
        <dl>
          <dt>Progress</dt><dd>{row.completed}/{row.total} steps · {row.percent}%{row.step && ` · ${row.step}`}</dd>
          <dt>Reason</dt><dd>{row.reason}{row.message && <span class="muted"> — {row.message}</span>}</dd>
          <dt>Queue</dt><dd>{row.queue || <span class="muted">none</span>} · priority {row.priority}</dd>
          <dt>Created</dt><dd>{stamp(row.created)} ({since(row.created, now)} ago)</dd>
          <dt>Duration</dt><dd>{duration(row, now)}</dd>
          {detail.waiting && (<><dt>Waiting</dt><dd class="waiting">{detail.waiting.sentence}</dd></>)}
          {detail.nextRetryTime && (<><dt>Next retry</dt><dd>{stamp(detail.nextRetryTime)}</dd></>)}
        </dl>
        {!row.archived && (
          <div class="actions">
            {ACTIONS.map((a) => (
              <button
                name={a}
                disabled={!context.actions}
                title={context.actions ? `${a} as you (a Kubernetes request with your credentials)` : 'read-only: start the dashboard with --allow-actions'}
                onClick={() => {
                  if (confirm(`${a} ${row.namespace}/${row.name}?`)) void act(a);
                }}
              >
                {a}
              </button>
            ))}
          </div>
        )}
        {notice && <p class="notice" role="status">{notice}</p>}
        {detail.notes.map((n) => <p class="muted note">{n}</p>)}
      </section>

      <h2>Timeline</h2>
      <Timeline items={spans(row.created, detail.attempts, detail.nextRetryTime, row.finished ? Date.parse(row.finished) : now)} now={now} />

      <h2>Steps</h2>
      <table class="steps">
        <thead><tr><th>Step</th><th>Phase</th><th>Attempt</th><th class="wide">Progress</th><th>Metrics</th><th>Result</th></tr></thead>
        <tbody>
          {detail.steps.map((spec) => {
            const s = detail.status.find((x) => x.name === spec.name);
            return (
              <tr data-step={spec.name}>
                <td>{spec.name}</td>
                <td>{s ? <PhaseBadge phase={s.phase} /> : <span class="muted">Pending</span>}</td>
                <td>{s?.attempt || ''}</td>
                <td class="wide">
                  {s?.progress ? (<><ProgressBar percent={s.progress.percent} phase={s.phase} /> <span class="count">{s.progress.percent}% {s.progress.message}</span></>) : null}
                  {s?.message && <div class="muted">{s.message}</div>}
                  {s?.warnings?.map((w) => <div class="warning">⚠ {w}</div>)}
                </td>
                <td>{s?.metrics && Object.entries(s.metrics).map(([k, v]) => <div><code>{k}</code> {v}</div>)}</td>
                <td>
                  {s?.result && <pre class="result preview">{s.result}</pre>}
                  {s?.resultRef && <PostedResult namespace={namespace} name={name} step={spec.name} size={s.resultRef.size} archived={archived} />}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {detail.result && (<><h2>Result</h2><pre class="result">{detail.result}</pre></>)}

      <h2>History</h2>
      <table class="history">
        <thead><tr><th>Time</th><th>Transition</th><th>Reason</th><th>Step</th><th>Message</th></tr></thead>
        <tbody>
          {detail.history.map((h) => (
            <tr><td>{stamp(h.time)}</td><td>{h.from} → {h.to}</td><td>{h.reason}</td><td>{h.step}</td><td>{h.message}</td></tr>
          ))}
        </tbody>
      </table>

      {detail.conditions.length > 0 && (
        <>
          <h2>Conditions</h2>
          <table>
            <thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th></tr></thead>
            <tbody>{detail.conditions.map((c) => <tr><td>{c.type}</td><td>{c.status}</td><td>{c.reason}</td><td>{c.message}</td></tr>)}</tbody>
          </table>
        </>
      )}

      <h2>Events</h2>
      {detail.events.length === 0 ? <p class="muted">No Events (they expire after an hour by default).</p> : (
        <table class="events">
          <thead><tr><th>Type</th><th>Reason</th><th>Last seen</th><th>Count</th><th>Message</th></tr></thead>
          <tbody>
            {detail.events.map((e) => (
              <tr class={e.type === 'Warning' ? 'warning' : ''}><td>{e.type}</td><td>{e.reason}</td><td>{since(e.lastSeen, now)} ago</td><td>{e.count}</td><td>{e.message}</td></tr>
            ))}
          </tbody>
        </table>
      )}

      {detail.jobs.length > 0 && (
        <>
          <h2>Jobs</h2>
          <table>
            <thead><tr><th>Job</th><th>Step</th><th>Attempt</th><th>Status</th><th>Age</th></tr></thead>
            <tbody>{detail.jobs.map((j) => <tr><td>{j.name}</td><td>{j.step}</td><td>{j.attempt}</td><td>{j.status}</td><td>{since(j.created, now)}</td></tr>)}</tbody>
          </table>
        </>
      )}
    </main>
  );
}
