// Durations and times as the CLI prints them.

export function short(seconds: number | undefined): string {
  if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? `${Math.floor((s % 86400) / 3600)}h` : ''}`;
}

export function since(time: string | undefined, now: number): string {
  if (!time) return '';
  return short((now - Date.parse(time)) / 1000);
}

export function stamp(time: string | undefined): string {
  if (!time) return '';
  return new Date(time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function percent(part: number, whole: number): string {
  if (!whole) return '–';
  return `${((part * 100) / whole).toFixed(1)}%`;
}
