// A real OpenID Connect provider for tests and the demo: the npm package oidc-provider, configured like
// ID-porten where it matters (confidential client, authorization code flow with PKCE, the `pid` claim with a
// fødselsnummer and no birthdate, no consent screen for the municipality's own client).
//
//   node tests/js/oidc_provider.mjs --port 4100 --client-id meraapent --client-secret s3cret \
//       --redirect-uri http://127.0.0.1:8000/min-nokkel/innlogget [--accounts '[{...}]']
//
// Every option can also come from the environment: OIDC_PORT, OIDC_HOST (where to listen), OIDC_ISSUER (the
// address phones use, default http://host:port), OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI,
// OIDC_ACCOUNTS. An account is {"login", "name", "birthdate": "YYYY-MM-DD", "claim":
// "pid" | "birthdate"}; with "pid" the provider releases a synthetic but checksum-valid fødselsnummer for that
// birth date (and no birthdate), with "birthdate" the standard claim. Without --accounts there are four, with
// birth dates counted from today: "voksen" (35, pid), "voksen-epost" (35, birthdate), "ungdom" (16, pid)
// and "barn" (13, pid). Sign in on the built-in login page with the login name and any password.
//
// Test and demo use only: the signing keys are made at start and forgotten at exit.
import { parseArgs } from "node:util";

import { Provider } from "oidc-provider";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: process.env.OIDC_PORT ?? "4100" },
    host: { type: "string", default: process.env.OIDC_HOST ?? "127.0.0.1" },
    issuer: { type: "string", default: process.env.OIDC_ISSUER ?? "" }, // default http://host:port
    "client-id": { type: "string", default: process.env.OIDC_CLIENT_ID ?? "meraapent" },
    "client-secret": { type: "string", default: process.env.OIDC_CLIENT_SECRET ?? "meraapent-test-secret" },
    "redirect-uri": {
      type: "string",
      default: process.env.OIDC_REDIRECT_URI ?? "http://127.0.0.1:8000/min-nokkel/innlogget",
    },
    accounts: { type: "string", default: process.env.OIDC_ACCOUNTS ?? "" },
  },
});

// --- synthetic fødselsnummer ------------------------------------------------------------------------------

const WEIGHTS_1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const WEIGHTS_2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

function checkDigit(digits, weights) {
  const sum = weights.reduce((total, weight, i) => total + weight * digits[i], 0);
  return (11 - (sum % 11)) % 11; // 10 means "no valid number with these digits"
}

// DDMMYY + a 3-digit individual number in the range of the birth century + two mod-11 check digits.
function fodselsnummer(birthdate, seed) {
  const [year, month, day] = birthdate.split("-").map(Number);
  const first = year >= 2000 ? 500 : 0;
  const dd = String(day).padStart(2, "0") + String(month).padStart(2, "0") + String(year % 100).padStart(2, "0");
  for (let step = 0; step < 500; step += 1) {
    const individual = first + ((seed * 37 + step) % 500);
    const digits = (dd + String(individual).padStart(3, "0")).split("").map(Number);
    const k1 = checkDigit(digits, WEIGHTS_1);
    if (k1 === 10) continue;
    const k2 = checkDigit([...digits, k1], WEIGHTS_2);
    if (k2 === 10) continue;
    return digits.join("") + String(k1) + String(k2);
  }
  throw new Error(`no valid fødselsnummer for ${birthdate}`);
}

// --- accounts ---------------------------------------------------------------------------------------------

function yearsAgo(years) {
  const day = new Date();
  day.setUTCFullYear(day.getUTCFullYear() - years);
  day.setUTCDate(day.getUTCDate() - 30);
  return day.toISOString().slice(0, 10);
}

const DEFAULT_ACCOUNTS = [
  { login: "voksen", name: "Kari Nordmann", birthdate: yearsAgo(35), claim: "pid" },
  { login: "voksen-epost", name: "Ola Nordmann", birthdate: yearsAgo(35), claim: "birthdate" },
  { login: "ungdom", name: "Sara Nordmann", birthdate: yearsAgo(16), claim: "pid" },
  { login: "barn", name: "Emil Nordmann", birthdate: yearsAgo(13), claim: "pid" },
];

function claimsOf(account, index) {
  const [given, ...family] = account.name.split(" ");
  const claims = { sub: `sub-${account.login}`, name: account.name, given_name: given, family_name: family.join(" ") };
  if (account.claim === "pid") {
    claims.pid = fodselsnummer(account.birthdate, index + 1);
  } else {
    claims.birthdate = account.birthdate;
  }
  return claims;
}

const accounts = new Map(
  (args.accounts ? JSON.parse(args.accounts) : DEFAULT_ACCOUNTS).map((account, i) => [
    account.login,
    claimsOf(account, i),
  ]),
);

async function findAccount(ctx, id) {
  const claims = accounts.get(id);
  if (!claims) return undefined;
  return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
}

// ID-porten asks no consent for the municipality's own client: the grant is made on the person's behalf.
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) return ctx.oidc.provider.Grant.find(grantId);
  const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
  grant.addOIDCScope("openid profile");
  grant.addOIDCClaims(["pid", "name", "given_name", "family_name", "birthdate"]);
  await grant.save();
  return grant;
}

// --- the provider -----------------------------------------------------------------------------------------

const issuer = args.issuer || `http://${args.host}:${args.port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args["client-id"],
      client_secret: args["client-secret"],
      redirect_uris: [args["redirect-uri"]],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub", "pid"],
    profile: ["name", "given_name", "family_name", "birthdate"],
  },
  findAccount,
  loadExistingGrant,
  pkce: { required: () => true },
  cookies: { keys: ["meraapent-test-provider-only"] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;

const server = provider.listen(Number(args.port), args.host, () => {
  console.log(`oidc-provider ${issuer} ready (${accounts.size} accounts)`);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
