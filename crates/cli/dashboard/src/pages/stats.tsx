// Statistics: success rate and durations over time, by queue, failures by step and reason — from the archive's
// rollups when the dashboard has an archive server, else from the live objects.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { Context, Figures, get, Stats } from '../api';
import { percent, short } from '../format';
import type { Scope } from '../main';

const SPANS: [string, string][] = [['1d', 'last day'], ['7d', 'last 7 days'], ['30d', 'last 30 days']];

export function StatsPage({ scope, context }: { scope: Scope; context: Context }) {
  const [since, setSince] = useState('7d');
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState('');
  const namespace = scope.all ? '' : scope.namespace;

  useEffect(() => {
    let cancelled = false;
    get<Stats>('/api/stats', { namespace, since })
      .then((s) => {
        if (cancelled) return;
        setStats(s);
        setError('');
      })
      .catch((e) => !cancelled && setError(String(e.message ?? e)));
    return () => {
      cancelled = true;
    };
  }, [namespace, since]);

  return (
    <main class="page stats">
      <div class="filters">
        {SPANS.map(([value, label]) => (
          <label><input type="radio" name="since" checked={since === value} onChange={() => setSince(value)} /> {label}</label>
        ))}
        {stats && <span class="muted">runs that finished in the span, from {stats.source === 'archive' ? 'the archive' : context.archive ? 'the live objects (archive unavailable)' : 'the live objects (no archive server)'}</span>}
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {stats && (
        <>
          <section class="figures">
            <Figure label="runs" value={String(stats.overall.total)} />
            <Figure label="succeeded" value={percent(stats.overall.succeeded, finished(stats.overall))} />
            <Figure label="failed" value={String(stats.overall.failed)} />
            <Figure label="cancelled" value={String(stats.overall.cancelled)} />
            <Figure label="median" value={short(stats.overall.p50Seconds)} />
            <Figure label="p95" value={short(stats.overall.p95Seconds)} />
          </section>
          <h2>Over time</h2>
          {stats.byPeriod.length === 0 ? <p class="muted">No finished runs in this span.</p> : <Chart stats={stats} />}
          <h2>By queue</h2>
          <table>
            <thead><tr><th>Queue</th><th>Runs</th><th>Success</th><th>Failed</th><th>Median</th><th>p95</th></tr></thead>
            <tbody>
              {stats.byQueue.map((q) => (
                <tr><td>{q.queue || <span class="muted">none</span>}</td><td>{q.total}</td><td>{percent(q.succeeded, finished(q))}</td><td>{q.failed}</td><td>{short(q.p50Seconds)}</td><td>{short(q.p95Seconds)}</td></tr>
              ))}
            </tbody>
          </table>
          <h2>Failures by step and reason</h2>
          {stats.failures.length === 0 ? <p class="muted">No failures.</p> : (
            <table class="failures">
              <thead><tr><th>Step</th><th>Reason</th><th>Runs</th></tr></thead>
              <tbody>{stats.failures.map((f) => <tr><td>{f.step}</td><td>{f.reason}</td><td>{f.count}</td></tr>)}</tbody>
            </table>
          )}
        </>
      )}
    </main>
  );
}

function finished(f: Figures): number {
  return f.succeeded + f.failed + f.cancelled;
}

function Figure({ label, value }: { label: string; value: string }) {
  return <div class="figure"><div class="value">{value || '–'}</div><div class="label">{label}</div></div>;
}

/** Success rate (left axis, %) and median / p95 duration (right axis, seconds) per period. */
function Chart({ stats }: { stats: Stats }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const xs = stats.byPeriod.map((p) => Date.parse(p.start) / 1000);
    const to = Date.now() / 1000;
    // From the start of the first bucket (a day or an hour) the span touches, so it is drawn whole.
    const from = Math.min(to - stats.sinceSeconds, xs[0] ?? to);
    const rate = stats.byPeriod.map((p) => (finished(p) ? (p.succeeded * 100) / finished(p) : null));
    const p50 = stats.byPeriod.map((p) => p.p50Seconds ?? null);
    const p95 = stats.byPeriod.map((p) => p.p95Seconds ?? null);
    const plot = new uPlot(
      {
        width: Math.max(480, (box.current.clientWidth || 960) - 16),
        height: 260,
        // The whole span asked for, even when only its last day had runs.
        scales: { x: { time: true, range: [from, to] }, rate: { range: [0, 100] }, s: {} },
        axes: [{}, { scale: 'rate', label: 'success %' }, { scale: 's', side: 1, label: 'seconds', grid: { show: false } }],
        series: [
          {},
          { label: 'success %', scale: 'rate', stroke: '#2e7d32', width: 2, points: { show: true } },
          { label: 'median s', scale: 's', stroke: '#1565c0', width: 1.5, points: { show: true } },
          { label: 'p95 s', scale: 's', stroke: '#ef6c00', width: 1.5, dash: [6, 4], points: { show: true } },
        ],
      },
      [xs, rate, p50, p95] as uPlot.AlignedData,
      box.current,
    );
    return () => plot.destroy();
  }, [stats]);
  return <div class="chart" ref={box} />;
}
