/**
 * Every error a client can get, in one catalog: a stable code, an HTTP status and what it means.
 * Bodies look like `{"error": {"code": "...", "message": "...", "path": "..."}}`.
 * docs/errors.md lists the same codes; a test keeps the two in step.
 */
export const ERRORS = {
  bad_json: { status: 400, text: 'The body is not valid JSON' },
  bad_msgpack: { status: 400, text: 'The body is not valid MessagePack' },
  bad_request: { status: 400, text: 'The request is malformed' },
  invalid_field: { status: 400, text: 'A field has the wrong type or value' },
  missing_field: { status: 400, text: 'A required field is missing' },
  unknown_field: { status: 400, text: 'A field is not part of the contract' },
  forbidden_key: { status: 400, text: 'Keys named __proto__, constructor or prototype are refused' },
  unauthorized: { status: 401, text: 'A bearer token is required' },
  forbidden: { status: 403, text: 'The token does not have the scope this route needs' },
  not_found: { status: 404, text: 'No such route' },
  ruleset_not_found: { status: 404, text: 'No such rule-set version' },
  profile_not_found: { status: 404, text: 'No profile is stored for this person' },
  bid_not_found: { status: 404, text: 'No such bid, or its notices expired' },
  rates_not_found: { status: 404, text: 'No currency rates are set' },
  campaign_not_found: {
    status: 404,
    text: 'The active rule set has no such campaign, and nothing is kept for one by that id',
  },
  method_not_allowed: { status: 405, text: 'The route does not take this method' },
  nothing_to_roll_back: {
    status: 409,
    text: 'No earlier activation to go back to (only one version was ever activated)',
  },
  ruleset_conflict: {
    status: 409,
    text: 'The active rule set changed while this change was made; look again and retry',
  },
  request_timeout: { status: 408, text: 'The body did not arrive in time' },
  body_too_large: { status: 413, text: 'The body is larger than the limit' },
  unsupported_media_type: { status: 415, text: 'Send application/json or application/msgpack' },
  invalid_ruleset: { status: 422, text: 'The rule set is not valid' },
  client_closed_request: {
    status: 499,
    text: 'The client hung up before the answer (never sent: counted and logged as such, not as a failure)',
  },
  internal: { status: 500, text: 'Something went wrong on our side' },
  store_unavailable: { status: 503, text: 'The profile store does not answer' },
  store_data_lost: {
    status: 503,
    text: 'This part of the profile store lost its string dictionary; the store must be emptied and its people imported again',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; path?: string };
}

/** An error meant for the client: carries its code, status and the path of the bad field. */
export class ClientError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly path: string | undefined;

  constructor(code: ErrorCode, message?: string, path?: string) {
    super(message ?? ERRORS[code].text);
    this.code = code;
    this.status = ERRORS[code].status;
    this.path = path;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    if (this.path !== undefined) body.error.path = this.path;
    return body;
  }
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  422: '422 Unprocessable Entity',
  499: '499 Client Closed Request',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

/** The status line uWebSockets.js wants (`"404 Not Found"`). */
export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Status`;
}

/** Rule-set validation failed: answers 422 `invalid_ruleset` with every error. */
export class RuleSetInvalid extends Error {
  constructor(
    readonly errors: ReadonlyArray<{
      code: string;
      path: string;
      message: string;
      line?: number;
      column?: number;
    }>,
  ) {
    super(`The rule set is not valid (${errors.length} problem${errors.length === 1 ? '' : 's'})`);
  }
}
