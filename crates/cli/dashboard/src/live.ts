// A watch pushed by the server as Server-Sent Events: the browser's EventSource reconnects by itself and sends the
// last event id (a resourceVersion), so the server resumes the watch where it stopped.
import { Row } from './api';

export interface Change {
  type: 'added' | 'modified' | 'deleted';
  row: Row;
}

export type LiveState = 'connecting' | 'live' | 'reconnecting';

export function watchRuns(
  params: Record<string, string | undefined>,
  onChange: (c: Change) => void,
  onReset: () => void,
  onState: (s: LiveState) => void,
  onFailure: (message: string) => void,
): () => void {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') query.set(k, v);
  const source = new EventSource(`/api/watch?${query.toString()}`);
  onState('connecting');
  source.onopen = () => onState('live');
  source.onerror = () => {
    // The browser retries by itself, unless the server refused the stream (closed for good): then say so.
    if (source.readyState === EventSource.CLOSED) onFailure('the live stream was refused or lost; reload the page');
    else onState('reconnecting');
  };
  source.addEventListener('change', (e) => {
    try {
      onChange(JSON.parse((e as MessageEvent).data) as Change);
    } catch {
      // a malformed event is dropped; the next list load corrects the page
    }
  });
  // The watch's resourceVersion is too old (410 Gone): read the page again and watch from there.
  source.addEventListener('reset', () => {
    source.close();
    onReset();
  });
  // The server could not watch (refused by the API server, say): retrying would only be refused again.
  source.addEventListener('failure', (e) => {
    source.close();
    let message = 'the watch failed';
    try {
      message = JSON.parse((e as MessageEvent).data).message ?? message;
    } catch {
      // keep the generic message
    }
    onFailure(message);
  });
  return () => source.close();
}
