/**
 * Control-plane request bodies: read with a size limit and a time limit, decoded as UTF-8,
 * parsed as JSON; each refusal a ClientError with its code.
 */
import { ClientError } from '../errors.js';

// ---- bodies -------------------------------------------------------------------------------------

/** The media type of a Content-Type header, lower-case, without parameters; '' when absent. */
export function mediaType(header: string | undefined): string {
  if (header === undefined) return '';
  const semi = header.indexOf(';');
  return (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase();
}

/** Reads a whole body, refusing it (413) as soon as it passes `limit` bytes. */
/**
 * The whole body, at most `limit` bytes, arrived within `timeoutMs` (a slow client must not hold
 * a connection and its buffers for ever: 408 request_timeout).
 */
export async function readBody(req: Request, limit: number, timeoutMs = 10_000): Promise<Uint8Array> {
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (req.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = () =>
    new ClientError('request_timeout', `The body did not arrive within ${Math.round(timeoutMs / 1000)} s`);
  let late = false;
  const lateness = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(timedOut());
      reader.cancel().catch(() => {});
    }, timeoutMs);
  });
  lateness.catch(() => {});
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), lateness]);
      // Cancelling ends the read as if the body were whole: it is not.
      if (late) throw timedOut();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

export function tooLarge(limit: number): ClientError {
  return new ClientError('body_too_large', `The body is larger than ${limit} bytes`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes to text; bodies must be UTF-8. */
export function decodeText(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ClientError('bad_request', 'The body is not valid UTF-8');
  }
}

export function parseJson(text: string): unknown {
  if (text.trim() === '') throw new ClientError('bad_json', 'The body is empty; send a JSON document');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ClientError('bad_json', `The body is not valid JSON: ${(e as Error).message}`);
  }
}
