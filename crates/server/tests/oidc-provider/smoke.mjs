// Self-check for provider.mjs (not used by the Rust tests): `node smoke.mjs`.
// Starts the provider and plays the relying party with plain fetch, a small
// cookie jar and manual redirects. Exits non-zero on the first failure.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  createLocalJWKSet, decodeJwt, decodeProtectedHeader, importPKCS8, jwtVerify, SignJWT,
} from 'jose';

const here = fileURLToPath(new URL('.', import.meta.url));
const CALLBACK = 'http://127.0.0.1:4567/auth/oidc/corp/callback';
const config = {
  clients: [
    { client_id: 'aegis', client_secret: 'basic-secret-0123456789', redirect_uris: [CALLBACK], token_endpoint_auth_method: 'client_secret_basic' },
    { client_id: 'aegis-post', client_secret: 'post-secret-0123456789', redirect_uris: [CALLBACK], token_endpoint_auth_method: 'client_secret_post' },
    { client_id: 'aegis-jwt', redirect_uris: [CALLBACK], token_endpoint_auth_method: 'private_key_jwt' },
  ],
  accounts: {
    alice: { email: 'alice@example.com', email_verified: true, name: 'Alice A', groups: ['advisors', 'aegis-admins'], realm_access: { roles: ['x'] } },
    bob: { email: 'bob@example.com', email_verified: false, name: 'Bob B', groups: [] },
  },
  default_account: 'alice',
};

let passed = 0;
function check(cond, what, extra) {
  if (!cond) {
    console.error(`FAIL: ${what}`, extra ?? '');
    child?.kill('SIGTERM');
    process.exit(1);
  }
  passed += 1;
  console.log(`ok - ${what}`);
}

// --- start -----------------------------------------------------------------
const t0 = performance.now();
const child = spawn(process.execPath, ['provider.mjs'], {
  cwd: here,
  env: { ...process.env, OIDC_TEST_CONFIG: JSON.stringify(config) },
  stdio: ['pipe', 'pipe', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });
let stdout = '';
const issuer = await new Promise((resolve, reject) => {
  child.stdout.on('data', (d) => {
    stdout += d;
    const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stdout);
    if (m) resolve(m[1]);
  });
  child.once('exit', (code) => reject(new Error(`provider exited ${code}: ${stderr}`)));
});
const startupMs = Math.round(performance.now() - t0);
console.log(`provider up at ${issuer} after ${startupMs} ms`);

// --- tiny cookie jar ---------------------------------------------------------
class Jar {
  cookies = new Map(); // name|path -> { name, value, path }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        const key = k.toLowerCase();
        if (key === 'path') path = v;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
        if (key === 'secure') this.sawSecure = true;
      }
      const id = `${name}|${path}`;
      if (expired) this.cookies.delete(id);
      else this.cookies.set(id, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

async function get(jar, url) {
  const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(url) } });
  jar.store(res);
  return res;
}

const json = async (res) => JSON.parse(await res.text());
const discovery = await json(await fetch(`${issuer}/.well-known/openid-configuration`));
check(discovery.issuer === issuer, 'discovery issuer');
check(discovery.code_challenge_methods_supported.join() === 'S256', 'only S256 PKCE advertised');

// Runs the front channel; returns { code, state, nonce, verifier, location, hops }.
async function authorize(jar, { clientId = 'aegis', loginHint, scope = 'openid email profile groups offline_access', pkce = true, extra = {} } = {}) {
  const state = crypto.randomBytes(12).toString('base64url');
  const nonce = crypto.randomBytes(12).toString('base64url');
  const verifier = crypto.randomBytes(32).toString('base64url');
  const params = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: CALLBACK, scope, state, nonce, ...extra,
  });
  if (pkce) {
    params.set('code_challenge', crypto.hash('sha256', verifier, 'base64url'));
    params.set('code_challenge_method', 'S256');
  }
  if (loginHint) params.set('login_hint', loginHint);
  let url = `${discovery.authorization_endpoint}?${params}`;
  const hops = [];
  for (let i = 0; i < 15; i += 1) {
    if (url.startsWith(CALLBACK)) {
      const cb = new URL(url);
      return {
        code: cb.searchParams.get('code'), error: cb.searchParams.get('error'), cb, state, nonce, verifier, hops,
      };
    }
    const res = await get(jar, url);
    hops.push(`${res.status} ${new URL(url).pathname}`);
    if (res.status < 300 || res.status >= 400) {
      return { status: res.status, body: await res.text(), hops };
    }
    url = new URL(res.headers.get('location'), url).href;
  }
  throw new Error(`too many redirects: ${hops.join(', ')}`);
}

async function token(body, headers = {}) {
  const res = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  return { status: res.status, body: await json(res) };
}

const basic = (id, secret) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` });
const exchangeBasic = (a) => token({
  grant_type: 'authorization_code', code: a.code, redirect_uri: CALLBACK, code_verifier: a.verifier,
}, basic('aegis', 'basic-secret-0123456789'));
const jwks = async () => json(await fetch(discovery.jwks_uri));

// --- main flow: bob via login_hint -------------------------------------------
const jarBob = new Jar();
const a1 = await authorize(jarBob, { loginHint: 'bob' });
console.log(`  redirect chain: ${a1.hops.join(' -> ')}`);
check(a1.code && a1.cb.searchParams.get('state') === a1.state, 'redirected to redirect_uri with code and state', a1);
console.log(`  callback query params: ${[...a1.cb.searchParams.keys()].join(', ')}; iss=${a1.cb.searchParams.get('iss')}`);
check(!jarBob.sawSecure, 'no Secure cookies over http');

const t1 = await exchangeBasic(a1);
check(t1.status === 200, 'code exchange with client_secret_basic', t1);
const idt = t1.body.id_token;
const h1 = decodeProtectedHeader(idt);
const c1 = decodeJwt(idt);
console.log('  id_token header', h1, '\n  id_token claims', c1);
check(h1.kid === 'k1' && h1.alg === 'RS256', 'id_token kid k1 RS256');
check(c1.sub === 'bob' && c1.nonce === a1.nonce, 'sub=bob and nonce echoed');
check(c1.email === 'bob@example.com' && c1.email_verified === false && c1.name === 'Bob B' && Array.isArray(c1.groups), 'email/profile/groups claims in id_token');
const set1 = createLocalJWKSet(await jwks());
const v1 = await jwtVerify(idt, set1, { issuer, audience: 'aegis' });
check(v1.payload.sub === 'bob', 'id_token verifies against JWKS');
check(typeof t1.body.refresh_token === 'string' && t1.body.refresh_token.length > 0, 'refresh_token issued');
console.log(`  token response keys: ${Object.keys(t1.body).join(', ')}; scope=${t1.body.scope}`);

const tokensNow = await json(await fetch(`${issuer}/__test/tokens`));
check(tokensNow.access_token === t1.body.access_token && tokensNow.refresh_token === t1.body.refresh_token, '/__test/tokens returns the last tokens');

const ui = await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${t1.body.access_token}` } });
const uiBody = await json(ui);
check(ui.status === 200 && uiBody.sub === 'bob' && uiBody.email === 'bob@example.com', 'userinfo works', uiBody);

const r1 = await token({ grant_type: 'refresh_token', refresh_token: t1.body.refresh_token }, basic('aegis', 'basic-secret-0123456789'));
check(r1.status === 200 && r1.body.id_token && r1.body.access_token, 'refresh_token grant works', r1);
console.log(`  refresh response keys: ${Object.keys(r1.body).join(', ')}; rotated RT: ${r1.body.refresh_token !== t1.body.refresh_token}`);
check(decodeJwt(r1.body.id_token).sub === 'bob', 'refreshed id_token for bob');

const replay = await exchangeBasic(a1);
check(replay.status === 400 && replay.body.error === 'invalid_grant', 'replayed code -> invalid_grant', replay);
const afterReplay = await token({ grant_type: 'refresh_token', refresh_token: r1.body.refresh_token ?? t1.body.refresh_token }, basic('aegis', 'basic-secret-0123456789'));
console.log(`  refresh after code replay -> ${afterReplay.status} ${afterReplay.body.error}`);

// --- PKCE is required; plain is refused ------------------------------------------
const noPkce = await authorize(new Jar(), { pkce: false });
check(noPkce.error === 'invalid_request', 'authorization without PKCE refused', noPkce.cb?.search);
const plain = await authorize(new Jar(), { pkce: false, extra: { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' } });
check(plain.error === 'invalid_request', 'PKCE plain refused', plain.cb?.search);
const fp = await authorize(new Jar(), { extra: { response_mode: 'form_post' } });
check(fp.error || fp.status >= 400, 'response_mode=form_post refused', fp.cb?.search ?? fp.status);

// --- login_hint unknown -> default account; realm_access under profile ---------
const jarX = new Jar();
const ax = await authorize(jarX, { loginHint: 'nobody' });
const tx = await exchangeBasic(ax);
const cx = decodeJwt(tx.body.id_token);
check(cx.sub === 'alice' && cx.realm_access?.roles?.[0] === 'x' && cx.groups?.length === 2, 'unknown login_hint -> default account, nested claim present');
const axNoGroups = await authorize(jarX, { scope: 'openid email' });
const cxNoGroups = decodeJwt((await exchangeBasic(axNoGroups)).body.id_token);
check(cxNoGroups.groups === undefined && cxNoGroups.name === undefined && cxNoGroups.email, 'claims follow requested scopes');

// --- strict client auth -----------------------------------------------------------
const a2 = await authorize(jarBob);
const wrongMethod = await token({
  grant_type: 'authorization_code', code: a2.code, redirect_uri: CALLBACK, code_verifier: a2.verifier, client_id: 'aegis', client_secret: 'basic-secret-0123456789',
});
check(wrongMethod.status === 401 && wrongMethod.body.error === 'invalid_client', 'basic client using client_secret_post -> 401 invalid_client', wrongMethod);
const stillGood = await exchangeBasic(a2);
check(stillGood.status === 200, 'code still usable after rejected auth attempt');
const wrongSecret = await exchangeBasic({ ...(await authorize(jarBob)), verifier: 'x'.repeat(43) });
check(wrongSecret.status === 400 && wrongSecret.body.error === 'invalid_grant', 'wrong code_verifier -> invalid_grant', wrongSecret);

const ap = await authorize(jarBob, { clientId: 'aegis-post' });
const tp = await token({
  grant_type: 'authorization_code', code: ap.code, redirect_uri: CALLBACK, code_verifier: ap.verifier, client_id: 'aegis-post', client_secret: 'post-secret-0123456789',
});
check(tp.status === 200 && decodeJwt(tp.body.id_token).aud === 'aegis-post', 'client_secret_post client works', tp);

// --- misbehave modes ----------------------------------------------------------------
async function setMode(mode) {
  const res = await fetch(`${issuer}/__test/misbehave`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode }) });
  check(res.status === 200, `misbehave ${mode}`);
}
async function freshIdToken(jar = jarBob) {
  const a = await authorize(jar);
  const t = await exchangeBasic(a);
  if (t.status !== 200) throw new Error(JSON.stringify(t));
  return { idt: t.body.id_token, nonce: a.nonce };
}
async function verifyError(idt) {
  try {
    await jwtVerify(idt, createLocalJWKSet(await jwks()), { issuer, audience: 'aegis' });
    return null;
  } catch (err) {
    return err.code;
  }
}
const nowS = () => Math.floor(Date.now() / 1000);

await setMode('nonce');
{
  const { idt, nonce } = await freshIdToken();
  check(decodeJwt(idt).nonce !== nonce && await verifyError(idt) === null, 'nonce: other nonce, valid signature');
}
await setMode('alg_none');
{
  const { idt } = await freshIdToken();
  const [h, , s] = idt.split('.');
  check(Buffer.from(h, 'base64url').toString() === '{"alg":"none"}' && s === '' && decodeJwt(idt).sub === 'bob', 'alg_none: header {"alg":"none"}, empty signature');
}
await setMode('unknown_key');
{
  const { idt } = await freshIdToken();
  const err = await verifyError(idt);
  check(decodeProtectedHeader(idt).kid === 'rogue' && err === 'ERR_JWKS_NO_MATCHING_KEY', `unknown_key: kid rogue, not in JWKS (${err})`);
}
await setMode('expired');
{
  const { idt } = await freshIdToken();
  const c = decodeJwt(idt);
  const err = await verifyError(idt);
  check(c.exp < nowS() - 3500 && c.iat < nowS() - 7100 && err === 'ERR_JWT_EXPIRED', `expired: exp -1h, iat -2h (${err})`);
}
await setMode('wrong_aud');
{
  const { idt } = await freshIdToken();
  const err = await verifyError(idt);
  check(decodeJwt(idt).aud !== 'aegis' && err === 'ERR_JWT_CLAIM_VALIDATION_FAILED', `wrong_aud: aud=${decodeJwt(idt).aud} (${err})`);
}
await setMode('wrong_iss');
{
  const { idt } = await freshIdToken();
  const err = await verifyError(idt);
  check(decodeJwt(idt).iss === 'http://evil.example' && err === 'ERR_JWT_CLAIM_VALIDATION_FAILED', `wrong_iss (${err})`);
  const a = await authorize(jarBob);
  const t = await exchangeBasic(a);
  const r = await token({ grant_type: 'refresh_token', refresh_token: t.body.refresh_token }, basic('aegis', 'basic-secret-0123456789'));
  check(r.status === 200 && decodeJwt(r.body.id_token).iss === 'http://evil.example', 'misbehave also applies to refresh_token grant responses');
}
await setMode('bad_signature');
{
  const { idt } = await freshIdToken();
  const err = await verifyError(idt);
  check(decodeProtectedHeader(idt).kid === 'k1' && err === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', `bad_signature (${err})`);
}
await setMode('future_iat');
{
  const { idt } = await freshIdToken();
  const c = decodeJwt(idt);
  const err = await verifyError(idt);
  check(c.iat > nowS() + 3500 && c.exp > c.iat, `future_iat: iat +1h (jose says: ${err ?? 'valid'})`);
}
await setMode(null);
{
  const { idt } = await freshIdToken();
  check(await verifyError(idt) === null && decodeProtectedHeader(idt).kid === 'k1', 'mode null restores normal id_tokens');
}
const badMode = await fetch(`${issuer}/__test/misbehave`, { method: 'POST', body: '{"mode":"bogus"}' });
check(badMode.status === 400, 'unknown misbehave mode -> 400');

// --- rotation --------------------------------------------------------------------------
const rot = await json(await fetch(`${issuer}/__test/rotate`, { method: 'POST' }));
check(rot.kid === 'k2', 'rotate -> k2');
const ks = await jwks();
check(ks.keys.map((k) => k.kid).join() === 'k1,k2' && ks.keys.every((k) => !k.d), 'JWKS lists k1 and k2, public only');
{
  const { idt } = await freshIdToken();
  check(decodeProtectedHeader(idt).kid === 'k2' && await verifyError(idt) === null, 'new id_token signed with k2 and verifies');
}
await setMode('nonce');
{
  const { idt } = await freshIdToken();
  check(decodeProtectedHeader(idt).kid === 'k2' && await verifyError(idt) === null, 'misbehave after rotation re-signs with k2');
}
await setMode(null);

// --- private_key_jwt -------------------------------------------------------------------
const ck = await json(await fetch(`${issuer}/__test/client-key?client_id=aegis-jwt`));
check(ck.alg === 'ES256' && ck.private_key_pem.startsWith('-----BEGIN PRIVATE KEY-----') && ck.kid, 'client-key endpoint');
check((await fetch(`${issuer}/__test/client-key?client_id=aegis`)).status === 404, 'client-key for a secret client -> 404');
const pk = await importPKCS8(ck.private_key_pem, 'ES256');
async function assertion(aud, alg = 'ES256', key = pk) {
  return new SignJWT({})
    .setProtectedHeader({ alg, kid: ck.kid })
    .setIssuer('aegis-jwt').setSubject('aegis-jwt').setAudience(aud)
    .setJti(crypto.randomUUID()).setIssuedAt().setExpirationTime('60s')
    .sign(key);
}
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
async function exchangeJwt(aud) {
  const a = await authorize(jarBob, { clientId: 'aegis-jwt' });
  return token({
    grant_type: 'authorization_code', code: a.code, redirect_uri: CALLBACK, code_verifier: a.verifier,
    client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(aud),
  });
}
for (const aud of [issuer, discovery.token_endpoint, [discovery.token_endpoint, 'x'], `${issuer}/`]) {
  const t = await exchangeJwt(aud);
  console.log(`  private_key_jwt aud=${JSON.stringify(aud)} -> ${t.status} ${t.body.error ?? ''} ${t.body.error_description ?? ''}`);
  if (aud === issuer || aud === discovery.token_endpoint) {
    check(t.status === 200 && decodeJwt(t.body.id_token).aud === 'aegis-jwt', `private_key_jwt works with aud=${aud}`);
  }
}
{
  const a = await authorize(jarBob, { clientId: 'aegis-jwt' });
  const t = await token({
    grant_type: 'authorization_code', code: a.code, redirect_uri: CALLBACK, code_verifier: a.verifier,
    client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(issuer, 'ES256', (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])).privateKey),
  });
  check(t.status === 401 && t.body.error === 'invalid_client', 'assertion signed with another key -> invalid_client');
}
{
  const a = await authorize(jarBob, { clientId: 'aegis-jwt' });
  const t = await token({
    grant_type: 'authorization_code', code: a.code, redirect_uri: CALLBACK, code_verifier: a.verifier,
  }, basic('aegis-jwt', 'whatever'));
  check(t.status === 401 && t.body.error === 'invalid_client', 'private_key_jwt client using basic -> invalid_client');
}

// --- stats ------------------------------------------------------------------------------
const stats = await json(await fetch(`${issuer}/__test/stats`));
console.log('  stats', stats);
check(stats.discovery === 1 && stats.jwks > 5 && stats.token > 10 && stats.userinfo === 1 && stats.authorization > 10, 'stats counted');

// --- lifetime ---------------------------------------------------------------------------
const tEnd = performance.now();
child.stdin.end();
const [code, signal] = await once(child, 'exit');
check(code === 0, `exits on stdin EOF (code ${code} ${signal}, ${Math.round(performance.now() - tEnd)} ms)`);
check(stdout === `listening on ${issuer}\n`, 'stdout carried exactly the listening line', JSON.stringify(stdout));
if (stderr) console.log(`  provider stderr:\n${stderr}`);

const child2 = spawn(process.execPath, ['provider.mjs'], { cwd: here, env: { ...process.env, OIDC_TEST_CONFIG: JSON.stringify(config) }, stdio: ['pipe', 'pipe', 'inherit'] });
await once(child2.stdout, 'data');
child2.kill('SIGTERM');
const [code2] = await once(child2, 'exit');
check(code2 === 0, 'exits on SIGTERM');

console.log(`${passed} passed, 0 failed (startup ${startupMs} ms)`);
