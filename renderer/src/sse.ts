/**
 * Reads a `text/event-stream` body until it ends: calls `onData` with each frame's data (its
 * `data:` lines joined by "\n"; frames without data are skipped). Frames end with a blank line.
 */
export async function readSseData(body: NonNullable<Response['body']>, onData: (data: string) => void): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end: number;
    while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = frame
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, '')) // one optional space after the colon
        .join('\n');
      if (data) onData(data);
    }
  }
}
