// Loopback OpenID Connect provider for the Aegis integration tests.
//
// Wraps the OpenID-certified `oidc-provider` package with a scripted (UI-less)
// login, a few test-control endpoints and an ID-token "misbehave" switch.
// Usage and the full contract are in README.md next to this file.
//
//   OIDC_TEST_CONFIG='{"clients":[...],"accounts":{...},"default_account":"alice"}' node provider.mjs
//
// stdout carries exactly one line: `listening on http://127.0.0.1:<port>`.
// Everything else goes to stderr. The process exits when stdin reaches EOF
// (unless OIDC_TEST_IGNORE_STDIN=1) and on SIGTERM / SIGINT.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as querystring from 'node:querystring';
import { CompactSign, decodeProtectedHeader, decodeJwt } from 'jose';

const VERBOSE = process.env.OIDC_TEST_VERBOSE === '1';

// ---------------------------------------------------------------------------
// stdout is a protocol channel: only the "listening on" line may go there.
// oidc-provider prints notices with console.info, so send every console
// method to stderr, and drop the provider's expected warnings unless verbose.
// ---------------------------------------------------------------------------
const toStderr = (...args) => console.error(...args);
console.log = toStderr;
console.info = toStderr;
console.debug = VERBOSE ? toStderr : () => {};
const expectedWarnings = [
  // oidc-provider 9.x officially targets Node.js 22 LTS; it runs on 20.x.
  'Unsupported runtime',
  // we pre-read /token bodies for the strict client-auth check (see below).
  'already parsed request body',
  // by design: state lives in memory for the life of the test process.
  'in-memory adapter is used',
];
console.warn = (...args) => {
  const text = args.map(String).join(' ');
  if (!VERBOSE && expectedWarnings.some((w) => text.includes(w))) return;
  console.error(...args);
};

function fail(message) {
  console.error(`oidc test provider: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------
let config;
try {
  config = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '');
} catch (err) {
  fail(`OIDC_TEST_CONFIG must be set to a JSON document (${err.message})`);
}
if (!config || typeof config !== 'object') fail('OIDC_TEST_CONFIG must be a JSON object');
if (!Array.isArray(config.clients) || config.clients.length === 0) fail('config.clients must be a non-empty array');
const accounts = config.accounts ?? {};
if (typeof accounts !== 'object' || Array.isArray(accounts)) fail('config.accounts must be an object');
const defaultAccount = config.default_account ?? Object.keys(accounts)[0];
if (!Object.hasOwn(accounts, defaultAccount)) fail(`default_account ${JSON.stringify(defaultAccount)} is not in accounts`);
const strictClientAuth = config.strict_client_auth !== false;

// Scope -> claims. Every top-level account claim that is not sub/email/
// email_verified/groups is released under the `profile` scope (this is how
// e.g. `realm_access` or `preferred_username` reach the RP).
const STANDARD_PROFILE = [
  'name', 'family_name', 'given_name', 'middle_name', 'nickname', 'preferred_username',
  'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at',
];
const NOT_PROFILE = new Set(['sub', 'email', 'email_verified', 'groups']);
const profileClaims = new Set(STANDARD_PROFILE);
for (const claims of Object.values(accounts)) {
  if (!claims || typeof claims !== 'object') fail('every account must be an object of claims');
  for (const key of Object.keys(claims)) if (!NOT_PROFILE.has(key)) profileClaims.add(key);
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------
function newRsaKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    kid,
    privateKey,
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
  };
}

// Signing keys, oldest first. The provider itself only knows k1; after
// /__test/rotate we re-sign ID tokens with the newest key and serve the JWKS
// (all keys) ourselves.
const signingKeys = [newRsaKey('k1')];
const currentKey = () => signingKeys[signingKeys.length - 1];
let rogueKey; // for misbehave=unknown_key, generated on first use

const clientKeys = new Map(); // client_id -> { kid, privateKeyPem }

const clients = config.clients.map((c) => {
  if (!c || typeof c.client_id !== 'string') fail('every client needs a string client_id');
  const method = c.token_endpoint_auth_method ?? 'client_secret_basic';
  const client = {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    response_modes: ['query'],
    ...c,
    token_endpoint_auth_method: method,
  };
  if (method === 'private_key_jwt') {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kid = `${c.client_id}-es256`;
    clientKeys.set(c.client_id, {
      kid,
      privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    });
    client.jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }] };
    delete client.client_secret;
  } else if (method.startsWith('client_secret') && typeof client.client_secret !== 'string') {
    fail(`client ${c.client_id} (${method}) needs a client_secret`);
  }
  return client;
});
const clientMethod = new Map(clients.map((c) => [c.client_id, c.token_endpoint_auth_method]));

// ---------------------------------------------------------------------------
// Test state
// ---------------------------------------------------------------------------
const MODES = new Set(['nonce', 'alg_none', 'unknown_key', 'expired', 'wrong_aud', 'wrong_iss', 'bad_signature', 'future_iat']);
let misbehave = null;
const lastTokens = { access_token: null, refresh_token: null };
const stats = { discovery: 0, jwks: 0, token: 0, userinfo: 0, authorization: 0 };
const STATS_PATHS = {
  '/.well-known/openid-configuration': 'discovery',
  '/jwks': 'jwks',
  '/token': 'token',
  '/me': 'userinfo',
  '/auth': 'authorization',
};

const b64u = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

async function sign(header, payload, key) {
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ ...header, alg: 'RS256', kid: key.kid })
    .sign(key.privateKey);
}

// Returns the ID token to hand out instead of `idToken` (the provider's own,
// signed with k1), according to the rotation state and the misbehave mode.
async function rewriteIdToken(idToken, clientId) {
  if (!misbehave && currentKey().kid === 'k1') return idToken;
  const header = decodeProtectedHeader(idToken);
  const claims = decodeJwt(idToken);
  const key = currentKey();
  switch (misbehave) {
    case null:
      return sign(header, claims, key);
    case 'nonce':
      return sign(header, { ...claims, nonce: crypto.randomBytes(16).toString('base64url') }, key);
    case 'alg_none':
      return `${b64u({ alg: 'none' })}.${b64u(claims)}.`;
    case 'unknown_key':
      rogueKey ??= newRsaKey('rogue');
      return sign(header, claims, rogueKey);
    case 'expired':
      return sign(header, { ...claims, iat: now() - 7200, exp: now() - 3600 }, key);
    case 'wrong_aud': {
      const other = clients.find((c) => c.client_id !== clientId)?.client_id ?? 'another-client';
      return sign(header, { ...claims, aud: other }, key);
    }
    case 'wrong_iss':
      return sign(header, { ...claims, iss: 'http://evil.example' }, key);
    case 'bad_signature': {
      const jws = await sign(header, claims, key);
      const dot = jws.lastIndexOf('.');
      // Change a character near the start of the signature: the last base64url
      // character partly encodes padding bits, so changing it may not change
      // the decoded signature at all.
      const i = dot + 5;
      return jws.slice(0, i) + (jws[i] === 'A' ? 'B' : 'A') + jws.slice(i + 1);
    }
    case 'future_iat': {
      const lifetime = (claims.exp ?? 0) - (claims.iat ?? 0) || 3600;
      const iat = now() + 3600;
      return sign(header, { ...claims, iat, exp: iat + lifetime }, key);
    }
    default:
      throw new Error(`unhandled misbehave mode ${misbehave}`);
  }
}

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------
function sendJson(res, status, body, headers = {}) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(data);
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function handleControl(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'POST /__test/misbehave': {
      let body;
      try {
        body = JSON.parse((await readBody(req)) || '{}');
      } catch {
        return sendJson(res, 400, { error: 'body must be JSON' });
      }
      const mode = body?.mode ?? null;
      if (mode !== null && !MODES.has(mode)) {
        return sendJson(res, 400, { error: `unknown mode ${JSON.stringify(mode)}`, modes: [...MODES] });
      }
      misbehave = mode;
      return sendJson(res, 200, { mode });
    }
    case 'POST /__test/rotate': {
      await readBody(req);
      signingKeys.push(newRsaKey(`k${signingKeys.length + 1}`));
      return sendJson(res, 200, { kid: currentKey().kid, kids: signingKeys.map((k) => k.kid) });
    }
    case 'GET /__test/client-key': {
      const clientId = url.searchParams.get('client_id');
      const key = clientKeys.get(clientId);
      if (!key) return sendJson(res, 404, { error: `no private_key_jwt client ${JSON.stringify(clientId)}` });
      return sendJson(res, 200, { kid: key.kid, alg: 'ES256', private_key_pem: key.privateKeyPem });
    }
    case 'GET /__test/tokens':
      return sendJson(res, 200, lastTokens);
    case 'GET /__test/stats':
      return sendJson(res, 200, stats);
    default:
      return sendJson(res, 404, { error: `no test endpoint ${route}` });
  }
}

// Which client authentication a token request uses, and for which client.
function presentedClientAuth(req, params) {
  const authz = req.headers.authorization;
  if (authz && /^basic /i.test(authz)) {
    const decoded = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
    const clientId = decoded.includes(':') ? decoded.slice(0, decoded.indexOf(':')) : decoded;
    let id = clientId;
    try { id = decodeURIComponent(clientId.replace(/\+/g, ' ')); } catch { /* keep raw */ }
    return { method: 'client_secret_basic', clientId: id };
  }
  if (typeof params.client_assertion === 'string') {
    let sub;
    try { ({ sub } = decodeJwt(params.client_assertion)); } catch { /* provider reports it */ }
    return { method: 'private_key_jwt', clientId: params.client_id ?? sub };
  }
  if (typeof params.client_secret === 'string') return { method: 'client_secret_post', clientId: params.client_id };
  return { method: 'none', clientId: params.client_id };
}

// The interaction "UI": log in the login_hint / default account, consent to
// everything requested.
async function handleInteraction(provider, req, res) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return sendJson(res, 400, { error: 'interaction not found', error_description: err.message });
  }
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    const hint = typeof params.login_hint === 'string' ? params.login_hint : undefined;
    const accountId = hint && Object.hasOwn(accounts, hint) ? hint : defaultAccount;
    result = { login: { accountId } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `test provider cannot handle prompt ${prompt.name}` };
  }
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------
// Start: bind first (OS-chosen port), then build the provider for that issuer.
// ---------------------------------------------------------------------------
let provider;
let providerCallback;

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname.startsWith('/__test/')) return await handleControl(req, res, url);

    const stat = STATS_PATHS[url.pathname];
    if (stat) stats[stat] += 1;

    if (url.pathname === '/jwks') {
      const data = JSON.stringify({ keys: signingKeys.map((k) => k.publicJwk) });
      res.writeHead(200, {
        'content-type': 'application/jwk-set+json; charset=utf-8',
        'content-length': Buffer.byteLength(data),
      });
      return res.end(data);
    }

    if (url.pathname.startsWith('/interaction/')) return await handleInteraction(provider, req, res);

    if (url.pathname === '/token' && req.method === 'POST' && strictClientAuth) {
      // oidc-provider treats client_secret_basic and client_secret_post as
      // interchangeable; be strict so the tests notice an RP that ignores its
      // configured method. The body is handed on to the provider pre-read.
      const raw = await readBody(req);
      req.body = raw;
      const params = querystring.parse(raw);
      const { method, clientId } = presentedClientAuth(req, params);
      const registered = clientMethod.get(clientId);
      if (registered && registered !== method) {
        return sendJson(res, 401, {
          error: 'invalid_client',
          error_description: `client authentication failed (client is registered for ${registered}, request used ${method})`,
        }, registered === 'client_secret_basic' ? { 'www-authenticate': 'Basic realm="oidc-test-provider"' } : {});
      }
    }

    return providerCallback(req, res);
  } catch (err) {
    console.error('oidc test provider: request failed', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    else res.destroy();
  }
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { default: Provider } = await import('oidc-provider');

provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKeys[0].privateJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: [...profileClaims],
    groups: ['groups'],
  },
  // Explicit lifetimes (seconds; the library defaults) so the library does not
  // print notices; `ttl` in the config overrides individual entries.
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    ...config.ttl,
  },
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
  },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return {
      accountId: id,
      claims: async () => ({ ...structuredClone(accounts[id]), sub: id }),
    };
  },
  renderError: async (ctx, out) => {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = out;
  },
});

provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error', err));
if (VERBOSE) {
  for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'jwks.error', 'discovery.error']) {
    provider.on(event, (ctx, err) => console.error(`oidc-provider ${event}`, err));
  }
}

// Rewrite the token endpoint's id_token (rotation / misbehave) and remember
// the last issued tokens.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || ctx.method !== 'POST' || ctx.status !== 200) return;
  const body = ctx.body;
  if (!body || typeof body !== 'object') return;
  if (body.access_token) lastTokens.access_token = body.access_token;
  if (body.refresh_token) lastTokens.refresh_token = body.refresh_token;
  if (body.id_token) {
    ctx.body = { ...body, id_token: await rewriteIdToken(body.id_token, ctx.oidc?.client?.clientId) };
  }
});

providerCallback = provider.callback();

// ---------------------------------------------------------------------------
// Lifetime: die with the parent.
// ---------------------------------------------------------------------------
const shutdown = () => process.exit(0);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.OIDC_TEST_IGNORE_STDIN !== '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

process.stdout.write(`listening on ${issuer}\n`);
