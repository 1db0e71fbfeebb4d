// What the dashboard's server (`kubectl crew dashboard`) answers, and how to ask it.

export type Phase = 'Pending' | 'Queued' | 'Running' | 'Paused' | 'Succeeded' | 'Failed' | 'Cancelled';
export const PHASES: Phase[] = ['Pending', 'Queued', 'Running', 'Paused', 'Succeeded', 'Failed', 'Cancelled'];

/** One execution as a row of the list (live or archived). */
export interface Row {
  namespace: string;
  name: string;
  uid: string;
  phase: Phase;
  reason: string;
  message: string;
  completed: number;
  total: number;
  percent: number;
  step: string;
  attempt?: number;
  queue: string;
  priority: number;
  durationSeconds?: number;
  created?: string;
  started?: string;
  finished?: string;
  archived: boolean;
}

export interface RunsPage {
  items: Row[];
  continue?: string;
  resourceVersion?: string;
}

export interface Context {
  namespace: string;
  server: string;
  archive: boolean;
  actions: boolean;
  /** Many users (in the cluster): each signs in with a bearer token. */
  users: boolean;
}

export interface Attempt {
  step: string;
  attempt: number;
  phase: string;
  started?: string;
  finished?: string;
  exitCode?: number;
  reason?: string;
  message?: string;
  jobName?: string;
}

export interface EventLine {
  type: string;
  reason: string;
  lastSeen?: string;
  count: number;
  message: string;
}

export interface JobLine {
  name: string;
  step: string;
  attempt: string;
  status: string;
  created?: string;
}

export interface Waiting {
  sentence: string;
  position: number;
  waiting: number;
  holders: string[];
}

export interface StepStatus {
  name: string;
  phase: string;
  attempt: number;
  jobName?: string;
  startTime?: string;
  completionTime?: string;
  exitCode?: number;
  message?: string;
  result?: string;
  resultRef?: { configMap: string; size: number; contentType: string };
  progress?: { percent: number; message?: string; updateTime?: string };
  metrics?: Record<string, number>;
  warnings?: string[];
}

export interface HistoryEntry {
  time: string;
  from: string;
  to: string;
  reason: string;
  message?: string;
  step?: string;
}

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface RunDetail {
  row: Row;
  steps: { name: string }[];
  status: StepStatus[];
  attempts: Attempt[];
  history: HistoryEntry[];
  conditions: Condition[];
  events: EventLine[];
  jobs: JobLine[];
  waiting?: Waiting;
  nextRetryTime?: string;
  result?: string;
  suspend: boolean;
  cancel: boolean;
  notes: string[];
  resourceVersion?: string;
}

export interface QueueLine {
  namespace: string;
  name: string;
  maxRunning?: number;
  running: Row[];
  waiting: { row: Row; position: number; why: string }[];
  waitingTotal: number;
}

export interface Figures {
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  p50Seconds?: number;
  p95Seconds?: number;
  meanSeconds?: number;
}

export interface Period extends Figures {
  start: string;
}

export interface Stats {
  source: 'archive' | 'live';
  sinceSeconds: number;
  overall: Figures;
  byPeriod: Period[];
  byQueue: (Figures & { queue: string })[];
  failures: { step: string; reason: string; count: number }[];
}

/** An answer the server refused, with the API server's own message when it had one. */
export class Refused extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

function csrf(): string {
  return document.querySelector('meta[name="crew-csrf"]')?.getAttribute('content') ?? '';
}

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && typeof body.message === 'string') message = body.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Refused(response.status, message);
  }
  return (await response.json()) as T;
}

export async function get<T>(path: string, params: Record<string, string | undefined> = {}): Promise<T> {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') query.set(k, v);
  const qs = query.toString();
  return answer<T>(await fetch(qs ? `${path}?${qs}` : path, { credentials: 'same-origin' }));
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'X-Crew-Csrf': csrf() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return answer<T>(
    await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
}

export const runPath = (ns: string, name: string) =>
  `/api/runs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
