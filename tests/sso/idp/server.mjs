// A real OpenID Provider (panva/oidc-provider) for MUSUBI's SSO end-to-end tests.
// Usage: node server.mjs '<json config>'  with
//   {"port": 1234, "clients": [{client_id, client_secret, redirect_uris}],
//    "accounts": {"<login>": {<claims>}}}
// Any password is accepted (the provider's development login and consent forms).
// Prints "READY <issuer>" on stdout once listening.
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups', 'realm_access', 'roles'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  cookies: { keys: ['musubi-test-idp-cookie-key'] },
  ...(config.jwks ? { jwks: config.jwks } : {}),
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('IdP server_error:', err));

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
