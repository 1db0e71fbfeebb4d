// The step timeline: a Gantt of the queue wait, every attempt of every step, and the backoffs between them.
import { Attempt } from './api';
import { short, stamp } from './format';

export interface Span {
  lane: string;
  kind: 'wait' | 'attempt' | 'backoff';
  phase: string;
  start: number;
  end: number;
  open: boolean;
  label: string;
}

/** The spans of a run, in milliseconds since the epoch; an unfinished span ends `now`. */
export function spans(created: string | undefined, attempts: Attempt[], nextRetry: string | undefined, now: number): Span[] {
  const out: Span[] = [];
  const starts = attempts.map((a) => (a.started ? Date.parse(a.started) : NaN)).filter((t) => !Number.isNaN(t));
  const first = starts.length ? Math.min(...starts) : undefined;
  if (created) {
    const c = Date.parse(created);
    const end = first ?? now;
    out.push({ lane: 'queue', kind: 'wait', phase: 'Queued', start: c, end, open: first === undefined, label: `waited ${short((end - c) / 1000)}` });
  }
  const byStep = new Map<string, Attempt[]>();
  for (const a of attempts) byStep.set(a.step, [...(byStep.get(a.step) ?? []), a]);
  for (const [step, list] of byStep) {
    list.sort((a, b) => a.attempt - b.attempt);
    list.forEach((a, i) => {
      if (!a.started) return;
      const start = Date.parse(a.started);
      const end = a.finished ? Date.parse(a.finished) : now;
      const why = [a.reason, a.message].filter(Boolean).join(': ');
      out.push({
        lane: step, kind: 'attempt', phase: a.phase, start, end, open: !a.finished,
        label: `attempt ${a.attempt} · ${a.phase} · ${short((end - start) / 1000)}${why ? ` · ${why}` : ''}`,
      });
      const following = list[i + 1];
      if (a.finished && (a.phase === 'Failed' || a.phase === 'Retrying')) {
        const resumed = following?.started ? Date.parse(following.started) : undefined;
        const waitUntil = resumed ?? (nextRetry && i === list.length - 1 ? Date.parse(nextRetry) : undefined);
        if (waitUntil !== undefined && waitUntil > end) {
          out.push({ lane: step, kind: 'backoff', phase: 'Backoff', start: end, end: Math.min(waitUntil, resumed ?? Math.max(now, end)), open: resumed === undefined, label: `backoff ${short((waitUntil - end) / 1000)}` });
        }
      }
    });
  }
  return out;
}

export function Timeline({ items, now }: { items: Span[]; now: number }) {
  if (items.length === 0) return <p class="muted">Nothing has run yet.</p>;
  const lanes = [...new Set(items.map((s) => s.lane))];
  const t0 = Math.min(...items.map((s) => s.start));
  const t1 = Math.max(...items.map((s) => s.end), t0 + 1000);
  const width = 1000;
  const labelWidth = 140;
  const laneHeight = 26;
  const x = (t: number) => labelWidth + ((t - t0) / (t1 - t0)) * (width - labelWidth - 10);
  const height = lanes.length * laneHeight + 24;
  const ticks = 5;
  return (
    <svg class="timeline" viewBox={`0 0 ${width} ${height}`} role="img" aria-label="step timeline" data-now={now}>
      {lanes.map((lane, i) => (
        <g key={lane} data-lane={lane}>
          <text x={4} y={i * laneHeight + 17} class="lane">{lane}</text>
          <line x1={labelWidth} x2={width - 10} y1={(i + 1) * laneHeight} y2={(i + 1) * laneHeight} class="grid" />
          {items
            .filter((s) => s.lane === lane)
            .map((s) => (
              <rect
                data-kind={s.kind}
                data-phase={s.phase}
                class={`span span-${s.kind} phase-${s.phase.toLowerCase()}${s.open ? ' open' : ''}`}
                x={x(s.start)}
                y={i * laneHeight + 5}
                width={Math.max(2, x(s.end) - x(s.start))}
                height={laneHeight - 10}
                rx={3}
              >
                <title>{s.label}</title>
              </rect>
            ))}
        </g>
      ))}
      {Array.from({ length: ticks + 1 }, (_, k) => {
        const t = t0 + ((t1 - t0) * k) / ticks;
        return (
          <text x={x(t)} y={height - 6} class="tick" text-anchor={k === 0 ? 'start' : k === ticks ? 'end' : 'middle'}>
            {k === 0 ? stamp(new Date(t).toISOString()) : `+${short((t - t0) / 1000)}`}
          </text>
        );
      })}
    </svg>
  );
}
