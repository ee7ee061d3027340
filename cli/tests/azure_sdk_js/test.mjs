// The Azure SDK for JavaScript (@azure/keyvault-secrets, @azure/identity from npm) against
// `tresor serve`, signed in with the unchanged ManagedIdentityCredential and
// DefaultAzureCredential through environment variables alone (run.sh sets them as
// `tresor identity env` prints them), plus `disableChallengeResourceVerification: true`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { SecretClient } from "@azure/keyvault-secrets";
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity";

for (const v of ["AZURE_KEYVAULT_URL", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "NODE_EXTRA_CA_CERTS"]) {
  if (!process.env[v]) throw new Error(`${v} is not set: run cli/tests/azure_sdk_js/run.sh`);
}

// What an app changes: the challenge names vault.azure.net, not 127.0.0.1.
const options = { disableChallengeResourceVerification: true };
const client = (credential) => new SecretClient(process.env.AZURE_KEYVAULT_URL, credential, options);
const fresh = () => "js-" + randomBytes(6).toString("hex");
const fast = { intervalInMs: 100 };

test("ManagedIdentityCredential: set, get, list, delete, recover, purge", async () => {
  const c = client(new ManagedIdentityCredential());
  const name = fresh();
  const set = await c.setSecret(name, "from node", { tags: { env: "dev" }, contentType: "text/plain" });
  assert.equal(set.value, "from node");
  const second = await c.setSecret(name, "second");
  const got = await c.getSecret(name);
  assert.equal(got.value, "second");
  assert.equal((await c.getSecret(name, { version: set.properties.version })).value, "from node");
  assert.deepEqual(set.properties.tags, { env: "dev" });
  assert.equal(set.properties.contentType, "text/plain");
  const names = [];
  for await (const p of c.listPropertiesOfSecrets()) names.push(p.name);
  assert.ok(names.includes(name));
  const versions = [];
  for await (const p of c.listPropertiesOfSecretVersions(name)) versions.push(p.version);
  assert.deepEqual(versions.sort(), [set.properties.version, second.properties.version].sort());

  await (await c.beginDeleteSecret(name, fast)).pollUntilDone();
  await assert.rejects(c.getSecret(name), (e) => e.statusCode === 404);
  assert.equal((await c.getDeletedSecret(name)).name, name);
  await (await c.beginRecoverDeletedSecret(name, fast)).pollUntilDone();
  assert.equal((await c.getSecret(name)).value, "second");

  await (await c.beginDeleteSecret(name, fast)).pollUntilDone();
  await c.purgeDeletedSecret(name);
  await assert.rejects(c.getDeletedSecret(name), (e) => e.statusCode === 404);
});

test("DefaultAzureCredential signs in as the same identity", async () => {
  const c = client(new DefaultAzureCredential());
  const name = fresh();
  await c.setSecret(name, "via default");
  assert.equal((await c.getSecret(name)).value, "via default");
});

test("the access token is short-lived and not the identity header", async () => {
  const token = await new ManagedIdentityCredential().getToken("https://vault.azure.net/.default");
  assert.ok(token.token.startsWith("tresor_at_"));
  assert.notEqual(token.token, process.env.IDENTITY_HEADER);
  const lifetime = Number(process.env.TRESOR_MI_LIFETIME);
  assert.ok(Math.abs(token.expiresOnTimestamp - (Date.now() + lifetime * 1000)) < 120_000);
});

test("without the option the SDK refuses the challenge", async () => {
  const c = new SecretClient(process.env.AZURE_KEYVAULT_URL, new ManagedIdentityCredential());
  await assert.rejects(c.getSecret(fresh()), /disableChallengeResourceVerification/);
});
