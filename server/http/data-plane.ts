/**
 * The data plane on uWebSockets.js: POST /v1/decide. No Fetch API objects, no frameworks: the
 * body is read straight from uWS, the answer written corked in one go. Every response path
 * checks for an aborted request before writing.
 */
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

export interface DataPlaneOptions {
  service: DecisionService;
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
  /** Called for answers of other routes: `unmatched` (404) and the decide route's 405. */
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
}

export function createDataPlane(opts: DataPlaneOptions): uWS.TemplatedApp {
  const app = uWS.App();
  const maxBody = opts.maxBodyBytes;
  const onDecision = opts.onDecision;
  const draining = opts.draining ?? (() => false);
  const authorize = opts.authorize;
  const onError =
    opts.onError ?? ((err: unknown, id: string) => console.error(`decision failed (request ${id})`, err));
  const onOtherRoute = opts.onOtherRoute;

  /** Writes the answer unless the request was aborted; false when it was. */
  const answer = (ex: Exchange, status: number, payload: unknown): boolean => {
    if (ex.closed) return false;
    ex.closed = true;
    const body = ex.format === 'json' ? JSON.stringify(payload) : msgpack.pack(payload);
    ex.res.cork(() => {
      ex.res
        .writeStatus(statusLine(status))
        .writeHeader('content-type', CONTENT_TYPE[ex.format])
        .end(body, draining());
    });
    return true;
  };

  const fail = (ex: Exchange, err: unknown): void => {
    const known = err instanceof ClientError;
    if (!known) onError(err, requestIdOf(ex.requestId));
    const e = known ? err : new ClientError('internal');
    if (answer(ex, e.status, e.toBody())) {
      onDecision?.(null, e.status, performance.now() - ex.started, e.code, ex.requestId);
    }
  };

  const done = (ex: Exchange, outcome: DecisionOutcome): void => {
    if (answer(ex, 200, outcome.output satisfies DecideOutput)) {
      onDecision?.(outcome, 200, performance.now() - ex.started, null, ex.requestId);
    }
  };

  const run = (ex: Exchange, body: Buffer): void => {
    try {
      const input = parseDecideBody(body, ex.format);
      const result = opts.service.decide(input);
      if (result instanceof Promise) {
        result.then(
          (outcome) => done(ex, outcome),
          (err: unknown) => fail(ex, err),
        );
      } else {
        done(ex, result);
      }
    } catch (err) {
      fail(ex, err);
    }
  };

  app.post('/v1/decide', (res, req) => {
    const format = bodyFormat(req.getHeader('content-type'));
    const declared = req.getHeader('content-length');
    const ex: Exchange = {
      res,
      closed: false,
      format: format ?? 'json',
      started: performance.now(),
      requestId: req.getHeader('x-request-id'),
    };
    opts.onRequest?.();
    res.onAborted(() => {
      if (ex.closed) return;
      ex.closed = true;
      onDecision?.(null, 499, performance.now() - ex.started, null, ex.requestId);
    });
    if (authorize !== undefined) {
      const verdict = authorize(req.getHeader('authorization'));
      if (verdict !== 'ok') {
        if (verdict === 'unauthorized') {
          reject(
            ex,
            'unauthorized',
            'Send Authorization: Bearer <token> with the decide scope',
            true,
            onDecision,
          );
        } else reject(ex, 'forbidden', 'The token does not have the decide scope', true, onDecision);
        return;
      }
    }
    if (format === null) {
      reject(ex, 'unsupported_media_type', 'Send application/json or application/msgpack', true, onDecision);
      return;
    }
    if (declared !== '' && Number(declared) > maxBody) {
      reject(ex, 'body_too_large', `The body is larger than ${maxBody} bytes`, true, onDecision);
      return;
    }
    let chunks: Buffer[] | null = null;
    let size = 0;
    res.onData((chunk, isLast) => {
      if (ex.closed) return;
      size += chunk.byteLength;
      if (size > maxBody) {
        reject(ex, 'body_too_large', `The body is larger than ${maxBody} bytes`, true, onDecision);
        return;
      }
      if (isLast && chunks === null) {
        // The common case: the whole body in one chunk. Copy it: uWS reuses the memory.
        run(ex, Buffer.from(new Uint8Array(chunk)));
        return;
      }
      (chunks ??= []).push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) run(ex, Buffer.concat(chunks, size));
    });
  });

  app.any('/v1/decide', (res) => {
    res.cork(() => {
      res
        .writeStatus(statusLine(405))
        .writeHeader('allow', 'POST')
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify(new ClientError('method_not_allowed', 'POST /v1/decide only').toBody()));
    });
    onOtherRoute?.('/v1/decide', 405, 'method_not_allowed');
  });

  if (opts.openrtb !== undefined) openRtbRoutes(app, opts.openrtb, maxBody, draining, authorize, onError);

  app.any('/*', (res, req) => {
    const url = req.getUrl();
    res.cork(() => {
      res
        .writeStatus(statusLine(404))
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify(new ClientError('not_found', `No route ${url} on the data plane`).toBody()));
    });
    onOtherRoute?.('unmatched', 404, 'not_found');
  });

  return app;
}

/** Answers an error before the body was read; closes the connection when the body is unread. */
function reject(
  ex: Exchange,
  code: ErrorCode,
  message: string,
  closeConnection: boolean,
  onDecision: DataPlaneOptions['onDecision'],
): void {
  if (ex.closed) return;
  ex.closed = true;
  const err = new ClientError(code, message);
  const body = ex.format === 'json' ? JSON.stringify(err.toBody()) : msgpack.pack(err.toBody());
  ex.res.cork(() => {
    ex.res.writeStatus(statusLine(err.status)).writeHeader('content-type', CONTENT_TYPE[ex.format]);
    if (code === 'unauthorized') ex.res.writeHeader('www-authenticate', 'Bearer');
    ex.res.end(body, closeConnection);
  });
  onDecision?.(null, err.status, performance.now() - ex.started, err.code, ex.requestId);
}

/**
 * POST /openrtb2/bid: a BidResponse (200) or no bid (204, no body); malformed 400, too large 413.
 * GET /openrtb2/win and /openrtb2/bill: 204 once recorded; 400 malformed, 404 unknown bid.
 */
function openRtbRoutes(
  app: uWS.TemplatedApp,
  rtb: OpenRtbRoutes,
  maxBody: number,
  draining: () => boolean,
  authorize: DataPlaneOptions['authorize'],
  onError: (err: unknown, requestId: string) => void,
): void {
  const { bidder, onBid, onNotice } = rtb;

  const write = (ex: Exchange, status: number, body: string | null): boolean => {
    if (ex.closed) return false;
    ex.closed = true;
    ex.res.cork(() => {
      ex.res.writeStatus(statusLine(status));
      if (body === null) ex.res.endWithoutBody(0, draining());
      else ex.res.writeHeader('content-type', 'application/json').end(body, draining());
    });
    return true;
  };
  const errorOf = (ex: Exchange, err: unknown): ClientError => {
    if (err instanceof ClientError) return err;
    onError(err, requestIdOf(ex.requestId));
    return new ClientError('internal');
  };
  const bidFailed = (ex: Exchange, err: unknown): void => {
    const e = errorOf(ex, err);
    if (write(ex, e.status, JSON.stringify(e.toBody()))) {
      onBid?.(null, e.status, performance.now() - ex.started, e.code);
    }
  };
  const bidDone = (ex: Exchange, answer: BidAnswer): void => {
    const ok = answer.status === 200 ? write(ex, 200, JSON.stringify(answer.body)) : write(ex, 204, null);
    if (ok) onBid?.(answer, answer.status, performance.now() - ex.started, null);
  };
  const run = (ex: Exchange, body: Buffer): void => {
    try {
      const result = bidder.bid(parseBidRequest(body), ex.started);
      if (result instanceof Promise) {
        result.then(
          (a) => bidDone(ex, a),
          (err: unknown) => bidFailed(ex, err),
        );
      } else bidDone(ex, result);
    } catch (err) {
      bidFailed(ex, err);
    }
  };

  app.post('/openrtb2/bid', (res, req) => {
    rtb.onRequest?.();
    const declared = req.getHeader('content-length');
    const ex: Exchange = {
      res,
      closed: false,
      format: 'json',
      started: performance.now(),
      requestId: req.getHeader('x-request-id'),
    };
    res.onAborted(() => {
      if (ex.closed) return;
      ex.closed = true;
      onBid?.(null, 499, performance.now() - ex.started, null);
    });
    const early = (code: ErrorCode, message: string): void => {
      const e = new ClientError(code, message);
      if (ex.closed) return;
      ex.closed = true;
      res.cork(() => {
        res.writeStatus(statusLine(e.status)).writeHeader('content-type', 'application/json');
        if (code === 'unauthorized') res.writeHeader('www-authenticate', 'Bearer');
        res.end(JSON.stringify(e.toBody()), true);
      });
      onBid?.(null, e.status, performance.now() - ex.started, code);
    };
    if (authorize !== undefined) {
      const verdict = authorize(req.getHeader('authorization'));
      if (verdict !== 'ok') {
        if (verdict === 'unauthorized')
          early('unauthorized', 'Send Authorization: Bearer <token> with the decide scope');
        else early('forbidden', 'The token does not have the decide scope');
        return;
      }
    }
    const type = req.getHeader('content-type');
    if (type !== '' && bodyFormat(type) !== 'json') {
      early(
        'unsupported_media_type',
        `Content-Type ${type} is not taken here; send application/json (OpenRTB)`,
      );
      return;
    }
    if (declared !== '' && Number(declared) > maxBody) {
      early('body_too_large', `The body is larger than ${maxBody} bytes`);
      return;
    }
    let chunks: Buffer[] | null = null;
    let size = 0;
    res.onData((chunk, isLast) => {
      if (ex.closed) return;
      size += chunk.byteLength;
      if (size > maxBody) {
        early('body_too_large', `The body is larger than ${maxBody} bytes`);
        return;
      }
      if (isLast && chunks === null) {
        run(ex, Buffer.from(new Uint8Array(chunk)));
        return;
      }
      (chunks ??= []).push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) run(ex, Buffer.concat(chunks, size));
    });
  });

  for (const kind of ['win', 'bill'] as const) {
    const route = `/openrtb2/${kind}`;
    app.get(route, (res, req) => {
      const ex: Exchange = {
        res,
        closed: false,
        format: 'json',
        started: performance.now(),
        requestId: req.getHeader('x-request-id'),
      };
      res.onAborted(() => {
        ex.closed = true;
      });
      const failed = (err: unknown): void => {
        const e = errorOf(ex, err);
        if (write(ex, e.status, JSON.stringify(e.toBody()))) onNotice?.(kind, null, e.status, e.code);
      };
      try {
        bidder.notice(kind, req.getQuery() ?? '').then((r) => {
          if (write(ex, 204, null)) onNotice?.(kind, r, 204, null);
        }, failed);
      } catch (err) {
        failed(err);
      }
    });
  }

  for (const route of ['/openrtb2/bid', '/openrtb2/win', '/openrtb2/bill']) {
    const allow = route === '/openrtb2/bid' ? 'POST' : 'GET';
    app.any(route, (res) => {
      res.cork(() => {
        res
          .writeStatus(statusLine(405))
          .writeHeader('allow', allow)
          .writeHeader('content-type', 'application/json')
          .end(JSON.stringify(new ClientError('method_not_allowed', `${allow} ${route} only`).toBody()));
      });
    });
  }
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
