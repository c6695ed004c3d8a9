// Log in with Digital ID from Node.js: openid-client 6 (npm install openid-client@6), the
// authorization code flow with PKCE S256, state and nonce, client_secret_basic or
// private_key_jwt, then UserInfo; with PAR and DPoP on request (FAPI 2.0 needs all three).
// Or, on a kiosk, the device authorization grant (RFC 8628): the citizen approves on their
// own phone and never types a PIN into the kiosk.
//
// A whole agency app in one file, on node:http so nothing else is needed. Configuration from
// the environment:
//   DIGITAL_ID_ISSUER     the issuer, e.g. https://id.example.go.id
//   AGENCY_CLIENT_ID      the client_id `digital-id clients add` printed
//   AGENCY_CLIENT_SECRET  its client_secret (registered with client_secret_basic, the default)
//   AGENCY_PRIVATE_KEY    instead of a secret: the agency's private key as a JWK (JSON, with
//                         its kid), for private_key_jwt; its public half is in the
//                         registration's jwks. EC P-256 (ES256) or RSA (PS256).
//   AGENCY_REDIRECT_URI   exactly as registered, e.g. https://pajak.example.go.id/callback
//   PORT                  where this app listens (default 3000)
//   AGENCY_PUSH_REQUESTS  1 to push each authorization request to Digital ID first (PAR,
//                         RFC 9126): the browser then carries only client_id and request_uri.
//                         Pushed anyway when the provider or the registration requires it.
//   AGENCY_ENCRYPTION_KEY the private EC P-256 key (a JWK, with its kid) Digital ID encrypts
//                         this app's ID tokens to (ECDH-ES), when the registration asks for
//                         id_token_encrypted_response_alg; its public half is in jwks.
//   AGENCY_DPOP           1 to bind the tokens to a key this app holds (DPoP, RFC 9449): a
//                         stolen access token is then useless without the key.
//   AGENCY_DEVICE         1 for a kiosk: the device authorization grant instead of the code
//                         flow. Register the client with grant_types
//                         ["urn:ietf:params:oauth:grant-type:device_code"] and redirect_uris
//                         []; AGENCY_REDIRECT_URI is then not needed.
// Run: node agency.mjs, then open http://localhost:3000/ (or your host) in a browser. As a
// kiosk: POST /kiosk/start for a code to show the citizen, then GET /kiosk/status?id=...
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import * as client from 'openid-client'

const issuer = new URL(process.env.DIGITAL_ID_ISSUER)
const device = process.env.AGENCY_DEVICE === '1'
const redirectUri = device ? undefined : new URL(process.env.AGENCY_REDIRECT_URI)
const scope = 'openid profile'

// openid-client refuses plain http, as it should. Allow it only for a provider on this
// machine (a local development server); a real issuer is always https.
const local = ['localhost', '127.0.0.1', '[::1]'].includes(issuer.hostname)
const options = issuer.protocol === 'http:' && local ? { execute: [client.allowInsecureRequests] } : {}

// private_key_jwt signs a short assertion (aud: the issuer) for every call; the key never
// leaves this process. Without a key, the client secret over HTTP Basic.
async function privateKey(jwk) {
  const algorithm =
    jwk.kty === 'EC' ? { name: 'ECDSA', namedCurve: jwk.crv } : { name: 'RSA-PSS', hash: 'SHA-256' }
  return { key: await crypto.subtle.importKey('jwk', jwk, algorithm, false, ['sign']), kid: jwk.kid }
}
const clientAuth = process.env.AGENCY_PRIVATE_KEY
  ? client.PrivateKeyJwt(await privateKey(JSON.parse(process.env.AGENCY_PRIVATE_KEY)))
  : client.ClientSecretBasic(process.env.AGENCY_CLIENT_SECRET)

// Discovery reads {issuer}/.well-known/openid-configuration and checks its issuer is ours.
const config = await client.discovery(
  issuer,
  process.env.AGENCY_CLIENT_ID,
  undefined,
  clientAuth,
  options,
)

// Pushed when asked, or when discovery says every client must push.
const push =
  process.env.AGENCY_PUSH_REQUESTS === '1' ||
  config.serverMetadata().require_pushed_authorization_requests === true

// Encrypted ID tokens: openid-client decrypts them with this key, then checks the inner
// signed token as usual. Content encryption A256GCM, the one Digital ID uses.
if (process.env.AGENCY_ENCRYPTION_KEY) {
  const jwk = JSON.parse(process.env.AGENCY_ENCRYPTION_KEY)
  const key = await crypto.subtle.importKey(
    'jwk', jwk, { name: 'ECDH', namedCurve: jwk.crv }, false, ['deriveBits'],
  )
  client.enableDecryptingResponses(config, ['A256GCM'], { key, alg: 'ECDH-ES', kid: jwk.kid })
}

// DPoP: one key pair for this process, never leaving it; openid-client signs a proof with
// it for every token and UserInfo request, and learns and retries Digital ID's nonces.
const dpop =
  process.env.AGENCY_DPOP === '1'
    ? client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'))
    : undefined

// Logins under way, by a random id kept in the browser's cookie. One process only: an app
// with several would keep these in its session store.
const pending = new Map()

async function start(request, response) {
  const login = {
    verifier: client.randomPKCECodeVerifier(),
    state: client.randomState(),
    nonce: client.randomNonce(),
  }
  const id = randomBytes(24).toString('base64url')
  pending.set(id, login)
  const parameters = {
    redirect_uri: redirectUri.href,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(login.verifier),
    code_challenge_method: 'S256', // Digital ID refuses a request without it
    state: login.state,
    nonce: login.nonce,
  }
  // With PAR the parameters go to Digital ID's /par, authenticated with the client secret,
  // and the browser is sent with the request_uri it answered (valid for 60 seconds, once).
  const url = push
    ? await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP: dpop })
    : client.buildAuthorizationUrl(config, parameters)
  const secure = redirectUri.protocol === 'https:' ? '; Secure' : ''
  response.writeHead(302, {
    Location: url.href,
    'Set-Cookie': `agency_login=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600${secure}`,
  })
  response.end()
}

async function finish(request, response) {
  const id = /(?:^|;\s*)agency_login=([^;]+)/.exec(request.headers.cookie ?? '')?.[1]
  const login = id && pending.get(id)
  pending.delete(id)
  if (!login) return send(response, 400, { error: 'no login under way in this browser' })
  const current = new URL(request.url, redirectUri)
  try {
    // Checks state, iss (RFC 9207), the code exchange with the PKCE verifier, and the ID
    // token: signature against the provider's JWKS, iss, aud, exp, nonce.
    const tokens = await client.authorizationCodeGrant(
      config,
      current,
      {
        pkceCodeVerifier: login.verifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      },
      undefined,
      { DPoP: dpop },
    )
    send(response, 200, await signedIn(tokens))
  } catch (error) {
    // The citizen pressed Deny (access_denied), or the answer failed a check. Say so plainly;
    // the details go to your log, not to the citizen.
    console.error(error)
    const denied = error instanceof client.AuthorizationResponseError
    send(response, denied ? 403 : 502, {
      error: denied ? error.error : 'login_failed',
      message: 'Sign-in with Digital ID was not completed.',
    })
  }
}

// Who signed in: the ID token's claims (checked by openid-client: iss, aud, exp), then
// UserInfo for the consented claims.
async function signedIn(tokens) {
  const idToken = tokens.claims()
  if (!idToken) throw new Error('Digital ID sent no ID token')
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, idToken.sub, {
    DPoP: dpop,
  })
  // Here your app starts its own session for idToken.sub (pairwise; never the NIK).
  return {
    sub: idToken.sub,
    acr: idToken.acr,
    token_type: tokens.token_type,
    // Whether the ID token came encrypted (openid-client keeps what it decrypted).
    id_token_encrypted: Boolean(client.getDecryptedResponses(tokens)?.id_token),
    userinfo,
  }
}

// The kiosk (AGENCY_DEVICE=1). It shows the citizen a user code and verification_uri_complete
// (as a QR code, say); the citizen opens it on their own phone, logs in and approves there,
// while this app polls Digital ID's token endpoint. Sign-ins under way, by a random id the
// kiosk's screen holds; one process only, as for `pending`.
const kiosks = new Map()

async function startKiosk(request, response) {
  const authorization = await client.initiateDeviceAuthorization(config, { scope })
  const id = randomBytes(24).toString('base64url')
  kiosks.set(id, { status: 'pending' })
  // openid-client's poller waits `interval` seconds between polls, waits longer when told to
  // slow_down, and gives up when the codes expire. It settles once: with the tokens, or
  // with the citizen's access_denied or expired_token (a ResponseBodyError).
  client
    .pollDeviceAuthorizationGrant(config, authorization, undefined, { DPoP: dpop })
    .then(signedIn)
    .then((citizen) => kiosks.set(id, { status: 'approved', ...citizen }))
    .catch((error) => {
      console.error(error)
      const refused = error instanceof client.ResponseBodyError
      kiosks.set(id, {
        status: 'failed',
        error: refused ? error.error : 'login_failed',
        message: 'Sign-in with Digital ID was not completed.',
      })
    })
  send(response, 200, {
    id,
    user_code: authorization.user_code,
    verification_uri: authorization.verification_uri,
    verification_uri_complete: authorization.verification_uri_complete,
    expires_in: authorization.expires_in,
  })
}

function kioskStatus(request, response, url) {
  const id = url.searchParams.get('id')
  const kiosk = kiosks.get(id)
  if (!kiosk) return send(response, 404, { error: 'no sign-in under way with this id' })
  // The outcome is told once; the kiosk then starts its session, or starts over.
  if (kiosk.status !== 'pending') kiosks.delete(id)
  send(response, 200, kiosk)
}

function send(response, status, body) {
  response.writeHead(status, { 'Content-Type': 'application/json' })
  response.end(JSON.stringify(body))
}

const routes = device
  ? { 'POST /kiosk/start': startKiosk, 'GET /kiosk/status': kioskStatus }
  : { 'GET /': start, [`GET ${redirectUri.pathname}`]: finish }

const server = createServer(async (request, response) => {
  const url = new URL(request.url, 'http://localhost')
  const route = routes[`${request.method} ${url.pathname}`]
  try {
    if (route) await route(request, response, url)
    else send(response, 404, { error: 'not_found' })
  } catch (error) {
    console.error(error)
    send(response, 500, { error: 'server_error' })
  }
})
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`agency listening on ${server.address().port}`)
})
