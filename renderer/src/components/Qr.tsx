/** The payment QR, drawn locally from code_url (never fetched): large, with a quiet zone. */
import { useEffect, useRef } from 'preact/hooks';
import QRCode from 'qrcode';

export function Qr({ value, size }: { value: string; size: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    canvas.current.removeAttribute('data-ready');
    // Level M and a 4-module margin: what scanners expect (protocol reference §8).
    QRCode.toCanvas(canvas.current, value, { errorCorrectionLevel: 'M', margin: 4, width: size }, () => {
      canvas.current?.setAttribute('data-ready', '1');
    });
  }, [value, size]);
  return <canvas ref={canvas} class="qr" data-testid="qr" data-code-url={value} width={size} height={size} />;
}
