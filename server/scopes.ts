/**
 * The API's scopes and the shape of a configured bearer token: read by the configuration
 * (TOKENS, TOKENS_FILE) and checked by the control plane (control/auth.ts). `admin` grants every
 * scope.
 */
export const SCOPES = [
  'decide',
  'rules:read',
  'rules:write',
  'profiles:read',
  'profiles:write',
  'events:write',
  'admin',
] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiToken {
  name: string;
  secret: string;
  scopes: Scope[];
}
