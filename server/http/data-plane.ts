/**
 * The data plane on uWebSockets.js: POST /v1/decide and, when the bidder is on, the OpenRTB
 * routes. No Fetch API objects, no frameworks: the body is read straight from uWS, the answer
 * written corked in one go. The two POST routes share one way in (`bodyRoutes`: the token
 * check, the media type, the bounded body reader, the refusal before the body is read) and
 * one way out (`send`, which writes nothing once the request was answered or aborted); they
 * differ only in what they parse and whom they tell.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import uWS from '@based/uws';
import { type BodyFormat, bodyFormat, msgpack, parseDecideBody } from '../decision/request.js';
import type { DecideOutput, DecisionOutcome, DecisionService } from '../decision/service.js';
import { ClientError, type ErrorCode, statusLine } from '../errors.js';
import { requestIdOf } from '../log.js';
import type { BidAnswer, Bidder, NoticeKind, NoticeResult } from '../openrtb/bidder.js';
import { parseBidRequest } from '../openrtb/request.js';

/** OpenRTB routes: POST /openrtb2/bid, GET /openrtb2/win and /openrtb2/bill. */
export interface OpenRtbRoutes {
  bidder: Bidder;
  /** Called when a bid request arrives, before anything else. */
  onRequest?: () => void;
  /**
   * Called once per bid request when answered or aborted: the answer (null for an error answer
   * or an abort, status 499) and the error code of an error answer.
   */
  onBid?: (answer: BidAnswer | null, status: number, elapsedMs: number, code: ErrorCode | null) => void;
  /** Called once per notice answered: the result (null for an error answer) and its code. */
  onNotice?: (kind: NoticeKind, result: NoticeResult | null, status: number, code: ErrorCode | null) => void;
}

/** What the data plane asks of the decision service: a decision for a checked request. */
export type DataPlaneService = Pick<DecisionService, 'decide'>;

export interface DataPlaneOptions {
  service: DataPlaneService;
  maxBodyBytes: number;
  /** Called when a decision request arrives, before anything else. */
  onRequest?: () => void;
  /**
   * Called once per decision request when it is answered or aborted (metrics, drain): the outcome
   * (null for an error answer or an abort, status 499), the error code of an error answer, and
   * the request's `x-request-id` header as sent ('' when absent).
   */
  onDecision?: (
    outcome: DecisionOutcome | null,
    status: number,
    elapsedMs: number,
    code: ErrorCode | null,
    requestIdHeader: string,
  ) => void;
  /** Called for answers of other routes: `unmatched` (404) and each route's 405. */
  onOtherRoute?: (route: string, status: number, code: ErrorCode) => void;
  /** An unexpected failure of a decision (answered 500), with the request's id. */
  onError?: (err: unknown, requestId: string) => void;
  /**
   * True while the server drains: answers then close their connection, so that keep-alive
   * clients reconnect (to another instance) instead of sending more here.
   */
  draining?: () => boolean;
  /**
   * Checks the request's `Authorization` header when the API has tokens: `unauthorized` (no or
   * an unknown token: 401), `forbidden` (a token without the `decide` scope: 403) or `ok`.
   * Absent: the data plane is open.
   */
  authorize?: (authorizationHeader: string) => 'ok' | 'unauthorized' | 'forbidden';
  /** The OpenRTB bidder routes; absent: not served. */
  openrtb?: OpenRtbRoutes;
}

export interface Listener {
  readonly port: number;
  /** Stops accepting connections; requests in flight still finish. */
  close(): void;
}

/** The data plane's listener: it can also end the connections its drain leaves open. */
export interface DataListener extends Listener {
  /**
   * Closes every connection still open: the idle keep-alive ones a load balancer holds, which
   * uWS would otherwise keep for its 10 s idle timeout (a drained worker thread ends only when its
   * last connection is gone). For the end of a drain, once requests in flight have finished.
   */
  terminate(): void;
}

const CONTENT_TYPE: Record<BodyFormat, string> = {
  json: 'application/json',
  msgpack: 'application/msgpack',
};

/** What a route handler needs to answer once, and only if the client is still there. */
interface Exchange {
  res: uWS.HttpResponse;
  /** answered or aborted: nothing may be written any more */
  closed: boolean;
  format: BodyFormat;
  started: number;
  /** The `x-request-id` header as sent, '' when absent. */
  requestId: string;
  /** The client takes gzip answers (`Accept-Encoding`). */
  gzip: boolean;
  /** `x-openrtb-version` of the answer; null: none. */
  openrtbVersion: string | null;
}

/**
 * Answers at least this long are gzipped for a client that takes gzip. Measured here (zlib level
 * 1, median of 5 x 2,000): gzipSync costs 16-21 µs whatever the size, a third of a bid's CPU,
 * while a one-bid answer (680 B) shrinks by 330 B, 2.6 µs on a 1 Gbit/s link. From about 4 KiB
 * (8 bids: 4,969 B to 448 B) the bytes saved are worth the CPU.
 */
export const GZIP_MIN_BYTES = 4096;

/** Whether an `Accept-Encoding` header takes gzip (`gzip`, `x-gzip`, `*`; not with `q=0`). */
function takesGzip(header: string): boolean {
  if (header === '') return false;
  for (const part of header.split(',')) {
    const [coding = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== '*') continue;
    return !params.some((p) => /^q=0(\.0*)?$/.test(p));
  }
  return false;
}

/**
 * Writes an answer in the exchange's format (`undefined`: no body), unless the request was
 * answered or aborted already; false then. `close` ends the connection after it.
 */
function send(ex: Exchange, status: number, payload: unknown, close: boolean, bearer = false): boolean {
  if (ex.closed) return false;
  const body =
    payload === undefined
      ? undefined
      : ex.format === 'json'
        ? JSON.stringify(payload)
        : msgpack.pack(payload);
  return sendBody(ex, status, body, close, bearer);
}

/** As `send`, with the body already in the exchange's format. */
function sendBody(
  ex: Exchange,
  status: number,
  body: string | Buffer | undefined,
  close: boolean,
  bearer = false,
): boolean {
  if (ex.closed) return false;
  ex.closed = true;
  const res = ex.res;
  res.cork(() => {
    res.writeStatus(statusLine(status));
    if (bearer) res.writeHeader('www-authenticate', 'Bearer');
    if (ex.openrtbVersion !== null) res.writeHeader('x-openrtb-version', ex.openrtbVersion);
    if (body === undefined) {
      res.endWithoutBody(0, close);
      return;
    }
    res.writeHeader('content-type', CONTENT_TYPE[ex.format]);
    if (ex.gzip && body.length >= GZIP_MIN_BYTES) {
      res.writeHeader('content-encoding', 'gzip').writeHeader('vary', 'accept-encoding');
      res.end(gzipSync(body, { level: 1 }), close);
    } else res.end(body, close);
  });
  return true;
}

/** A POST route that takes a body: what differs between the decide and the bid route. */
interface BodyRoute<T> {
  /** Called when a request arrives, before anything else. */
  onRequest: (() => void) | undefined;
  /** The body's format from its Content-Type header; null refuses it (415) with `mediaMessage`. */
  format(contentType: string): BodyFormat | null;
  mediaMessage(contentType: string): string;
  /** Called once per request refused, failed or aborted (499): no result then. */
  settled(ex: Exchange, status: number, code: ErrorCode | null): void;
  /** The answer to the whole body, at once or later; a throw or a rejection answers an error. */
  handle(ex: Exchange, body: Buffer): T | Promise<T>;
  /** Writes the answer (through `send`) and reports it. */
  done(ex: Exchange, answer: T): void;
  /** `x-openrtb-version` on every answer; null: none. */
  openrtbVersion: string | null;
}

/**
 * Makes the data plane's POST routes: one auth check, one body reader, one way to refuse, and one
 * way from the handler to the answer (synchronous when it can be, an error answer on a failure).
 */
function bodyRoutes(
  maxBody: number,
  authorize: DataPlaneOptions['authorize'],
  errorOf: (ex: Exchange, err: unknown) => ClientError,
  draining: () => boolean,
) {
  /** Answers an error before the body was read or used, and closes the connection. */
  const refuse = <T>(route: BodyRoute<T>, ex: Exchange, code: ErrorCode, message: string): void => {
    const err = new ClientError(code, message);
    if (send(ex, err.status, err.toBody(), true, code === 'unauthorized')) {
      route.settled(ex, err.status, err.code);
    }
  };
  const tooLarge = `The body is larger than ${maxBody} bytes`;
  /** Answers a failure of the handler: a ClientError as it is, anything else a logged 500. */
  const fail = <T>(route: BodyRoute<T>, ex: Exchange, err: unknown): void => {
    const e = errorOf(ex, err);
    if (send(ex, e.status, e.toBody(), draining())) route.settled(ex, e.status, e.code);
  };
  const run = <T>(route: BodyRoute<T>, ex: Exchange, body: Buffer): void => {
    try {
      const answer = route.handle(ex, body);
      if (answer instanceof Promise) {
        answer.then(
          (a) => route.done(ex, a),
          (err: unknown) => fail(route, ex, err),
        );
      } else route.done(ex, answer);
    } catch (err) {
      fail(route, ex, err);
    }
  };

  return <T>(route: BodyRoute<T>) =>
    (res: uWS.HttpResponse, req: uWS.HttpRequest): void => {
      route.onRequest?.();
      const type = req.getHeader('content-type');
      const format = route.format(type);
      const declared = req.getHeader('content-length');
      const ex: Exchange = {
        res,
        closed: false,
        format: format ?? 'json',
        started: performance.now(),
        requestId: req.getHeader('x-request-id'),
        gzip: takesGzip(req.getHeader('accept-encoding')),
        openrtbVersion: route.openrtbVersion,
      };
      res.onAborted(() => {
        if (ex.closed) return;
        ex.closed = true;
        route.settled(ex, 499, null);
      });
      const encoding = req.getHeader('content-encoding').trim().toLowerCase();
      const gzipped = encoding === 'gzip' || encoding === 'x-gzip';
      if (authorize !== undefined) {
        const verdict = authorize(req.getHeader('authorization'));
        if (verdict === 'unauthorized') {
          refuse(route, ex, 'unauthorized', 'Send Authorization: Bearer <token> with the decide scope');
          return;
        }
        if (verdict === 'forbidden') {
          refuse(route, ex, 'forbidden', 'The token does not have the decide scope');
          return;
        }
      }
      if (format === null) {
        refuse(route, ex, 'unsupported_media_type', route.mediaMessage(type));
        return;
      }
      if (!gzipped && encoding !== '' && encoding !== 'identity') {
        refuse(
          route,
          ex,
          'unsupported_media_type',
          `Content-Encoding ${encoding} is not taken; send gzip or none`,
        );
        return;
      }
      if (declared !== '' && Number(declared) > maxBody) {
        refuse(route, ex, 'body_too_large', tooLarge);
        return;
      }
      /** The whole body, inflated when it came gzipped (the same limit holds for what it inflates to). */
      const take = (body: Buffer): void => {
        let inflated = body;
        if (gzipped) {
          try {
            inflated = gunzipSync(body, { maxOutputLength: maxBody });
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
              refuse(route, ex, 'body_too_large', `The body inflates to more than ${maxBody} bytes`);
            } else refuse(route, ex, 'bad_request', 'The body is not valid gzip');
            return;
          }
        }
        run(route, ex, inflated);
      };
      let chunks: Buffer[] | null = null;
      let size = 0;
      res.onData((chunk, isLast) => {
        if (ex.closed) return;
        size += chunk.byteLength;
        if (size > maxBody) {
          refuse(route, ex, 'body_too_large', tooLarge);
          return;
        }
        if (isLast && chunks === null) {
          // The common case: the whole body in one chunk. Copy it: uWS reuses the memory.
          take(Buffer.from(new Uint8Array(chunk)));
          return;
        }
        (chunks ??= []).push(Buffer.from(new Uint8Array(chunk)));
        if (isLast) take(Buffer.concat(chunks, size));
      });
    };
}

/** Answers 405 on every other method of `route`. */
function onlyMethod(
  app: uWS.TemplatedApp,
  route: string,
  allow: 'GET' | 'POST',
  onOtherRoute: DataPlaneOptions['onOtherRoute'],
): void {
  app.any(route, (res) => {
    res.cork(() => {
      res
        .writeStatus(statusLine(405))
        .writeHeader('allow', allow)
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify(new ClientError('method_not_allowed', `${allow} ${route} only`).toBody()));
    });
    onOtherRoute?.(route, 405, 'method_not_allowed');
  });
}

export function createDataPlane(opts: DataPlaneOptions): uWS.TemplatedApp {
  const app = uWS.App();
  const onDecision = opts.onDecision;
  const draining = opts.draining ?? (() => false);
  const onError =
    opts.onError ?? ((err: unknown, id: string) => console.error(`decision failed (request ${id})`, err));
  /** The error to answer for a failure: a ClientError as it is, anything else logged and a 500. */
  const errorOf = (ex: Exchange, err: unknown): ClientError => {
    if (err instanceof ClientError) return err;
    onError(err, requestIdOf(ex.requestId));
    return new ClientError('internal');
  };
  const bodyRoute = bodyRoutes(opts.maxBodyBytes, opts.authorize, errorOf, draining);

  app.post(
    '/v1/decide',
    bodyRoute<DecisionOutcome>({
      onRequest: opts.onRequest,
      format: bodyFormat,
      mediaMessage: () => 'Send application/json or application/msgpack',
      openrtbVersion: null,
      settled: (ex, status, code) =>
        onDecision?.(null, status, performance.now() - ex.started, code, ex.requestId),
      handle: (ex, body) => opts.service.decide(parseDecideBody(body, ex.format)),
      done(ex, outcome) {
        if (send(ex, 200, outcome.output satisfies DecideOutput, draining())) {
          onDecision?.(outcome, 200, performance.now() - ex.started, null, ex.requestId);
        }
      },
    }),
  );
  onlyMethod(app, '/v1/decide', 'POST', opts.onOtherRoute);

  if (opts.openrtb !== undefined) {
    openRtbRoutes(app, opts.openrtb, bodyRoute, errorOf, draining, opts.onOtherRoute);
  }

  app.any('/*', (res, req) => {
    const url = req.getUrl();
    res.cork(() => {
      res
        .writeStatus(statusLine(404))
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify(new ClientError('not_found', `No route ${url} on the data plane`).toBody()));
    });
    opts.onOtherRoute?.('unmatched', 404, 'not_found');
  });

  return app;
}

/** The OpenRTB version the bidder speaks (2.6; it reads 2.5's `ext` places too). */
const OPENRTB_VERSION = '2.6';

/**
 * POST /openrtb2/bid: a BidResponse (200) or no bid (204, no body); malformed 400, too large 413.
 * GET /openrtb2/win and /openrtb2/bill: 204 once recorded; 400 malformed, 404 unknown bid.
 */
function openRtbRoutes(
  app: uWS.TemplatedApp,
  rtb: OpenRtbRoutes,
  bodyRoute: ReturnType<typeof bodyRoutes>,
  errorOf: (ex: Exchange, err: unknown) => ClientError,
  draining: () => boolean,
  onOtherRoute: DataPlaneOptions['onOtherRoute'],
): void {
  const { bidder, onBid, onNotice } = rtb;

  app.post(
    '/openrtb2/bid',
    bodyRoute<BidAnswer>({
      onRequest: rtb.onRequest,
      // OpenRTB is JSON; a request without a Content-Type is taken as JSON.
      format: (type) => (bodyFormat(type) === 'json' ? 'json' : null),
      mediaMessage: (type) => `Content-Type ${type} is not taken here; send application/json (OpenRTB)`,
      openrtbVersion: OPENRTB_VERSION,
      settled: (ex, status, code) => onBid?.(null, status, performance.now() - ex.started, code),
      handle: (ex, body) => bidder.bid(parseBidRequest(body), ex.started),
      done(ex, answer) {
        const ok = sendBody(ex, answer.status, answer.status === 200 ? answer.text : undefined, draining());
        if (ok) onBid?.(answer, answer.status, performance.now() - ex.started, null);
      },
    }),
  );

  for (const kind of ['win', 'bill'] as const) {
    const route = `/openrtb2/${kind}`;
    app.get(route, (res, req) => {
      const ex: Exchange = {
        res,
        closed: false,
        format: 'json',
        started: performance.now(),
        requestId: req.getHeader('x-request-id'),
        gzip: false,
        openrtbVersion: null,
      };
      res.onAborted(() => {
        ex.closed = true;
      });
      const failed = (err: unknown): void => {
        const e = errorOf(ex, err);
        if (send(ex, e.status, e.toBody(), draining())) onNotice?.(kind, null, e.status, e.code);
      };
      try {
        bidder.notice(kind, req.getQuery() ?? '').then((r) => {
          if (send(ex, 204, undefined, draining())) onNotice?.(kind, r, 204, null);
        }, failed);
      } catch (err) {
        failed(err);
      }
    });
  }

  onlyMethod(app, '/openrtb2/bid', 'POST', onOtherRoute);
  onlyMethod(app, '/openrtb2/win', 'GET', onOtherRoute);
  onlyMethod(app, '/openrtb2/bill', 'GET', onOtherRoute);
}

/** Listens on host:port (0 picks a free port). */
export function listen(app: uWS.TemplatedApp, host: string, port: number): Promise<DataListener> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) {
        reject(new Error(`The data plane could not listen on ${host}:${port} (in use?)`));
        return;
      }
      let open = true;
      resolve({
        port: uWS.us_socket_local_port(socket as unknown as uWS.us_socket),
        close() {
          if (!open) return;
          open = false;
          uWS.us_listen_socket_close(socket);
        },
        terminate() {
          open = false;
          app.close();
        },
      });
    });
  });
}
