/**
 * Saves text the relay made (CSV) as a file: a Blob link clicked once. In Chromium (web host) it
 * goes to the downloads folder; Electron asks where to save. The content is encoded as UTF-8 by
 * the Blob, so the leading U+FEFF becomes the BOM Excel needs to read Chinese.
 */
export function saveTextFile(filename: string, content: string, type = 'text/csv;charset=utf-8'): void {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
