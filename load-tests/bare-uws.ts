/**
 * The HTTP ceiling: uWebSockets.js answering POST /v1/decide with a fixed JSON body (the size of
 * a typical decision answer) after reading the request body, nothing else.
 *   PORT=<port> BODY_BYTES=<n> node dist/load-tests/bare-uws.js
 */
import uWS from '@based/uws';

/** A JSON answer of exactly `bytes` bytes, shaped like a decision. */
export function fixedAnswer(bytes: number): string {
  const head =
    '{"ruleset":1,"user":"p-1","decisions":[{"placement":"home-banner","campaign":"x90-launch","pad":"';
  const tail = '"}]}';
  return head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail;
}

function main(): void {
  const port = Number(process.env.PORT ?? 0);
  const body = fixedAnswer(Number(process.env.BODY_BYTES ?? 400));
  const app = uWS.App();
  app.post('/v1/decide', (res) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    res.onData((_chunk, last) => {
      if (!last || aborted) return;
      res.cork(() => {
        res.writeHeader('content-type', 'application/json').end(body);
      });
    });
  });
  app.listen('127.0.0.1', port, (token) => {
    if (!token) {
      console.error(`bare-uws: cannot listen on ${port}`);
      process.exit(1);
    }
    console.log(`bare-uws: listening on ${port}`);
  });
}

if (process.argv[1]?.endsWith('bare-uws.js')) main();
