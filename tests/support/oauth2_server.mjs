// A real OAuth 2.0 server (oauth2-mock-server, npm) for the XOAUTH2 connection tests.
//
//   node oauth2_server.mjs CLIENT_ID CLIENT_SECRET [CERT_PEM KEY_PEM]
//
// With CERT_PEM and KEY_PEM it serves HTTPS (the operator accepts only https:// token URLs).
//
// Issues RS256 JWTs by the client-credentials grant to CLIENT_ID with CLIENT_SECRET only (the
// mock itself accepts any secret; the beforeResponse hook makes it refuse wrong ones with
// 401 invalid_client, as a real provider does). Prints "READY <port>" and serves until its
// standard input closes. Tokens verify against <scheme>://localhost:<port>/jwks.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const modules = process.env.OAUTH2_MOCK_MODULES ?? path.resolve(import.meta.dirname, "../../.tools/node/node_modules");
const { OAuth2Server } = await import(require.resolve("oauth2-mock-server", { paths: [modules] }));

const [clientId, clientSecret, cert, key] = process.argv.slice(2);
const server = cert && key ? new OAuth2Server(key, cert) : new OAuth2Server();
await server.issuer.keys.generate("RS256");
server.service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  if (body.client_id !== clientId || body.client_secret !== clientSecret) {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "client authentication failed" };
  }
});
await server.start(0, "127.0.0.1");
const port = new URL(server.issuer.url).port;
console.log(`READY ${port}`);
process.stdin.resume();
process.stdin.on("end", async () => {
  await server.stop();
  process.exit(0);
});
