"""Fixtures: SecretClients of the real Azure SDK pointed at `tresor serve`.

The servers are started by .ci/run (or by hand, see README.md) and described by environment
variables:

- TRESOR_URL, TRESOR_CA: a server on a vault with purge protection off, and its CA certificate;
- TRESOR_OWNER_TOKEN, TRESOR_WRITER_TOKEN, TRESOR_READER_TOKEN: tokens of that vault;
- TRESOR_PP_URL, TRESOR_PP_CA, TRESOR_PP_OWNER_TOKEN: a second server, on a vault with purge
  protection on.
"""

import os
import time
import uuid

import pytest
from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient


class TresorTokenCredential:
    """A credential whose get_token returns a tresor token: no Azure AD, no azure-identity."""

    def __init__(self, token):
        self._token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self._token, int(time.time()) + 3600)

    def close(self):
        pass


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: start `tresor serve` as .ci/run does")
    return value


def make_client(url_var, ca_var, token, **kwargs):
    return SecretClient(
        vault_url=_env(url_var),
        credential=TresorTokenCredential(token),
        verify_challenge_resource=False,
        connection_verify=_env(ca_var),
        **kwargs,
    )


@pytest.fixture(scope="session")
def owner():
    return make_client("TRESOR_URL", "TRESOR_CA", _env("TRESOR_OWNER_TOKEN"))


@pytest.fixture(scope="session")
def writer():
    return make_client("TRESOR_URL", "TRESOR_CA", _env("TRESOR_WRITER_TOKEN"))


@pytest.fixture(scope="session")
def reader():
    return make_client("TRESOR_URL", "TRESOR_CA", _env("TRESOR_READER_TOKEN"))


@pytest.fixture(scope="session")
def protected():
    return make_client("TRESOR_PP_URL", "TRESOR_PP_CA", _env("TRESOR_PP_OWNER_TOKEN"))


@pytest.fixture
def name():
    """A fresh secret name per test, so that tests do not depend on each other."""
    return "t-" + uuid.uuid4().hex[:12]
