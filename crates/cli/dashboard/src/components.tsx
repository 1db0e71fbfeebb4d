// Pieces every page uses: the phase badge, the progress bar, a table of runs.
import { useEffect, useState } from 'preact/hooks';
import { Row } from './api';
import { short, since } from './format';

export function PhaseBadge({ phase }: { phase: string }) {
  return <span class={`phase phase-${phase.toLowerCase()}`}>{phase}</span>;
}

export function ProgressBar({ percent, phase }: { percent: number; phase: string }) {
  const p = Math.max(0, Math.min(100, percent));
  return (
    <div class="bar" role="progressbar" aria-valuenow={p} aria-valuemin={0} aria-valuemax={100}>
      <div class={`fill phase-${phase.toLowerCase()}`} style={{ width: `${p}%` }} />
    </div>
  );
}

export function runHref(row: Row): string {
  const base = `#/run/${encodeURIComponent(row.namespace)}/${encodeURIComponent(row.name)}`;
  return row.archived ? `${base}?archived=1` : base;
}

/** The running duration grows by the clock; a finished one is as written. */
export function duration(row: Row, now: number): string {
  if (row.phase === 'Running' && row.started && !row.finished) return since(row.started, now);
  return short(row.durationSeconds);
}

export function RunTable({ rows, now, showNamespace }: { rows: Row[]; now: number; showNamespace: boolean }) {
  return (
    <table class="runs">
      <thead>
        <tr>
          {showNamespace && <th>Namespace</th>}
          <th>Name</th>
          <th>Phase</th>
          <th class="wide">Progress</th>
          <th>Step</th>
          <th>Queue</th>
          <th>Duration</th>
          <th>Age</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.uid || `${row.namespace}/${row.name}`} data-run={`${row.namespace}/${row.name}`} data-phase={row.phase}>
            {showNamespace && <td>{row.namespace}</td>}
            <td>
              <a href={runHref(row)}>{row.name}</a>
              {row.archived && <span class="tag">archived</span>}
            </td>
            <td title={row.reason ? `${row.reason}: ${row.message}` : row.message}>
              <PhaseBadge phase={row.phase} />
            </td>
            <td class="wide">
              <ProgressBar percent={row.percent} phase={row.phase} />
              <span class="count">
                {row.completed}/{row.total} · {row.percent}%
              </span>
            </td>
            <td>
              {row.step}
              {row.step && row.attempt && row.attempt > 1 ? <span class="muted"> (attempt {row.attempt})</span> : null}
            </td>
            <td>{row.queue}</td>
            <td>{duration(row, now)}</td>
            <td>{since(row.created, now)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A clock that ticks once a second, for durations and ages. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}
