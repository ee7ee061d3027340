"""Managed identities: the unchanged ManagedIdentityCredential and DefaultAzureCredential of
azure-identity sign in to `tresor serve` through environment variables alone (plus
`verify_challenge_resource=False` on the SecretClient).

run.sh registers two identities before starting the server (`tresor identity add`) and exports
TRESOR_MI_ENDPOINT (the identity endpoint `serve` printed), TRESOR_MI_WRITER_HEADER and
TRESOR_MI_READER_HEADER (the IDENTITY_HEADER values `tresor identity add` printed), and
TRESOR_MI_LIFETIME (the access tokens' lifetime in seconds).
"""

import asyncio
import os
import time

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from conftest import _env

# Variables that would make azure-identity pick another credential or another protocol.
OTHER_AZURE_VARIABLES = [
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_TOKEN_CREDENTIALS",
]


@pytest.fixture
def identity_env(monkeypatch):
    """Sets the environment `tresor identity env` prints, for the identity named by the test."""

    def use(header_var):
        for var in OTHER_AZURE_VARIABLES:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", _env("TRESOR_MI_ENDPOINT"))
        monkeypatch.setenv("IDENTITY_HEADER", _env(header_var))
        monkeypatch.setenv("AZURE_KEYVAULT_URL", _env("TRESOR_URL"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", _env("TRESOR_CA"))
        monkeypatch.setenv("SSL_CERT_FILE", _env("TRESOR_CA"))

    return use


def app_client(credential):
    """What an app changes: `verify_challenge_resource=False`; the rest comes from the environment."""
    return SecretClient(
        vault_url=os.environ["AZURE_KEYVAULT_URL"],
        credential=credential,
        verify_challenge_resource=False,
    )


def test_managed_identity_credential_signs_in_as_a_writer(identity_env, name):
    identity_env("TRESOR_MI_WRITER_HEADER")
    client = app_client(ManagedIdentityCredential())
    assert client.set_secret(name, "from an identity").value == "from an identity"
    assert client.get_secret(name).value == "from an identity"
    assert name in {p.name for p in client.list_properties_of_secrets()}
    client.begin_delete_secret(name).wait()
    client.begin_recover_deleted_secret(name).wait()
    assert client.get_secret(name).value == "from an identity"


def test_default_azure_credential_signs_in_as_a_reader(identity_env, owner, name):
    owner.set_secret(name, "readable")
    identity_env("TRESOR_MI_READER_HEADER")
    client = app_client(DefaultAzureCredential())
    assert client.get_secret(name).value == "readable"
    with pytest.raises(HttpResponseError) as e:
        client.set_secret(name, "not allowed")
    assert e.value.status_code == 403
    assert owner.get_secret(name).value == "readable"


def test_access_tokens_are_short_lived_and_not_identity_headers(identity_env):
    identity_env("TRESOR_MI_WRITER_HEADER")
    token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
    lifetime = int(_env("TRESOR_MI_LIFETIME"))
    assert abs(token.expires_on - (time.time() + lifetime)) < 120
    assert token.token.startswith("tresor_at_")
    assert token.token != os.environ["IDENTITY_HEADER"]


def test_a_wrong_identity_header_is_refused(identity_env):
    identity_env("TRESOR_MI_WRITER_HEADER")
    os.environ["IDENTITY_HEADER"] = "tresor_" + "0" * 64
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token("https://vault.azure.net/.default")


def test_an_identity_header_is_not_a_bearer_token(identity_env, name):
    from conftest import TresorTokenCredential

    identity_env("TRESOR_MI_WRITER_HEADER")
    client = app_client(TresorTokenCredential(os.environ["IDENTITY_HEADER"]))
    with pytest.raises(ClientAuthenticationError):
        client.get_secret(name)


def test_the_challenge_resource_check_is_what_the_app_turns_off(identity_env, name):
    identity_env("TRESOR_MI_WRITER_HEADER")
    client = SecretClient(
        vault_url=os.environ["AZURE_KEYVAULT_URL"], credential=ManagedIdentityCredential()
    )
    with pytest.raises(ValueError, match="verify_challenge_resource"):
        client.get_secret(name)


def test_async_clients_sign_in_too(identity_env, name):
    from azure.identity.aio import DefaultAzureCredential as AsyncDefault
    from azure.identity.aio import ManagedIdentityCredential as AsyncManaged
    from azure.keyvault.secrets.aio import SecretClient as AsyncClient

    identity_env("TRESOR_MI_WRITER_HEADER")

    async def run(credential, value):
        async with credential, AsyncClient(
            vault_url=os.environ["AZURE_KEYVAULT_URL"],
            credential=credential,
            verify_challenge_resource=False,
        ) as client:
            await client.set_secret(name, value)
            return (await client.get_secret(name)).value

    assert asyncio.run(run(AsyncManaged(), "async managed")) == "async managed"
    assert asyncio.run(run(AsyncDefault(), "async default")) == "async default"
