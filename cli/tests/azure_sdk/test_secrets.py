"""The Azure SDK for Python (azure-keyvault-secrets) against `tresor serve`."""

import uuid

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from conftest import TresorTokenCredential, make_client


def inner_code(err):
    return err.response.json()["error"]["innererror"]["code"]


def test_set_with_tags_and_content_type_then_get_latest_and_by_version(owner, name):
    first = owner.set_secret(name, "hunter2", content_type="text/plain", tags={"env": "dev"})
    assert first.value == "hunter2"
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"env": "dev"}
    assert first.properties.enabled is True
    assert len(first.properties.version) == 32
    assert first.properties.vault_url == owner.vault_url
    second = owner.set_secret(name, "correct horse")
    latest = owner.get_secret(name)
    assert latest.value == "correct horse"
    assert latest.properties.version == second.properties.version
    assert latest.properties.created_on is not None
    assert latest.properties.recoverable_days == 90
    assert latest.properties.recovery_level == "Recoverable+Purgeable"
    old = owner.get_secret(name, first.properties.version)
    assert old.value == "hunter2"
    assert old.properties.tags == {"env": "dev"}
    with pytest.raises(ResourceNotFoundError):
        owner.get_secret(name, "0" * 32)


def test_update_properties(owner, name):
    owner.set_secret(name, "v")
    updated = owner.update_secret_properties(
        name, content_type="application/json", tags={"team": "payments"}
    )
    assert updated.content_type == "application/json"
    assert updated.tags == {"team": "payments"}
    got = owner.get_secret(name)
    assert got.value == "v"
    assert got.properties.content_type == "application/json"
    assert got.properties.tags == {"team": "payments"}


def test_list_with_paging(owner):
    prefix = "page-" + uuid.uuid4().hex[:6]
    names = {f"{prefix}-{i}" for i in range(12)}
    for n in names:
        owner.set_secret(n, "x")
    pages = list(owner.list_properties_of_secrets(max_page_size=5).by_page())
    seen = [p.name for page in pages for p in page]
    assert names <= set(seen)
    assert len(seen) == len(set(seen)), "an item was listed twice"
    assert len(pages) >= 3
    assert all(len(list(page)) <= 5 for page in owner.list_properties_of_secrets(max_page_size=5).by_page())


def test_list_versions(owner, name):
    versions = [owner.set_secret(name, f"v{i}").properties.version for i in range(7)]
    listed = list(owner.list_properties_of_secret_versions(name, max_page_size=3))
    assert {p.version for p in listed} == set(versions)
    assert all(p.name == name for p in listed)
    by_page = list(owner.list_properties_of_secret_versions(name, max_page_size=3).by_page())
    assert len(by_page) == 3


def test_delete_and_wait_then_deleted_get_list_and_recover(owner, name):
    owner.set_secret(name, "keep me", tags={"k": "v"})
    poller = owner.begin_delete_secret(name)
    deleted = poller.result()
    assert deleted.name == name
    assert deleted.recovery_id.endswith(f"/deletedsecrets/{name}")
    poller.wait()
    assert poller.done()
    with pytest.raises(ResourceNotFoundError):
        owner.get_secret(name)
    got = owner.get_deleted_secret(name)
    assert got.deleted_date is not None
    assert got.scheduled_purge_date > got.deleted_date
    assert got.properties.tags == {"k": "v"}
    assert name in {d.name for d in owner.list_deleted_secrets(max_page_size=2)}
    recovered = owner.begin_recover_deleted_secret(name)
    recovered.wait()
    assert recovered.result().name == name
    assert owner.get_secret(name).value == "keep me"
    with pytest.raises(ResourceNotFoundError):
        owner.get_deleted_secret(name)


def test_setting_a_deleted_name_is_a_conflict(owner, name):
    owner.set_secret(name, "x")
    owner.begin_delete_secret(name).wait()
    with pytest.raises(ResourceExistsError) as e:
        owner.set_secret(name, "y")
    assert e.value.status_code == 409
    assert inner_code(e.value) == "ObjectIsDeletedButRecoverable"


def test_purge(owner, name):
    owner.set_secret(name, "gone soon")
    owner.begin_delete_secret(name).wait()
    owner.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        owner.get_deleted_secret(name)
    assert owner.set_secret(name, "reborn").value == "reborn"


def test_purge_refused_under_purge_protection(protected, name):
    protected.set_secret(name, "x")
    deleted = protected.begin_delete_secret(name)
    deleted.wait()
    assert deleted.result().properties.recovery_level == "Recoverable"
    with pytest.raises(HttpResponseError) as e:
        protected.purge_deleted_secret(name)
    assert e.value.status_code == 403
    assert "purge protection" in e.value.message
    assert protected.get_deleted_secret(name).name == name


def test_backup_and_restore(owner, name):
    first = owner.set_secret(name, "v1")
    owner.set_secret(name, "v2")
    blob = owner.backup_secret(name)
    assert isinstance(blob, bytes) and len(blob) > 32
    with pytest.raises(ResourceExistsError):
        owner.restore_secret_backup(blob)
    owner.begin_delete_secret(name).wait()
    owner.purge_deleted_secret(name)
    restored = owner.restore_secret_backup(blob)
    assert restored.name == name
    assert owner.get_secret(name).value == "v2"
    assert owner.get_secret(name, first.properties.version).value == "v1"
    with pytest.raises(HttpResponseError) as e:
        owner.restore_secret_backup(blob[:-5])
    assert e.value.status_code == 400


def test_disabled_secret_is_forbidden(owner, name):
    owner.set_secret(name, "hidden")
    owner.update_secret_properties(name, enabled=False)
    with pytest.raises(HttpResponseError) as e:
        owner.get_secret(name)
    assert e.value.status_code == 403
    assert inner_code(e.value) == "SecretDisabled"
    assert [p.enabled for p in owner.list_properties_of_secret_versions(name)] == [False]
    owner.update_secret_properties(name, enabled=True)
    assert owner.get_secret(name).value == "hidden"


def test_reader_may_read_but_not_write(owner, reader, writer, name):
    owner.set_secret(name, "shared")
    assert reader.get_secret(name).value == "shared"
    with pytest.raises(HttpResponseError) as e:
        reader.set_secret(name, "nope")
    assert e.value.status_code == 403
    with pytest.raises(HttpResponseError) as e:
        reader.begin_delete_secret(name)
    assert e.value.status_code == 403
    assert owner.get_secret(name).value == "shared"
    assert writer.set_secret(name, "written").value == "written"
    writer.begin_delete_secret(name).wait()
    with pytest.raises(HttpResponseError) as e:
        writer.purge_deleted_secret(name)
    assert e.value.status_code == 403


def test_an_unknown_token_is_refused():
    client = make_client("TRESOR_URL", "TRESOR_CA", "tresor_" + "0" * 64)
    with pytest.raises(ClientAuthenticationError):
        client.get_secret("anything")


def test_older_api_version(name):
    import os

    client = make_client("TRESOR_URL", "TRESOR_CA", os.environ["TRESOR_OWNER_TOKEN"], api_version="7.4")
    client.set_secret(name, "old api")
    assert client.get_secret(name).value == "old api"


def test_oldest_api_version_the_sdk_offers(owner, name):
    import os

    client = make_client(
        "TRESOR_URL", "TRESOR_CA", os.environ["TRESOR_OWNER_TOKEN"], api_version="2016-10-01"
    )
    client.set_secret(name, "oldest api")
    assert client.get_secret(name).value == "oldest api"


def test_no_tags_and_no_inner_error_keys(owner, name):
    owner.set_secret(name, "untagged")
    got = owner.get_secret(name)
    # Azure leaves `tags` out when there are none: the SDK reads None, not {}.
    assert got.properties.tags is None
    import os

    import requests

    raw = requests.get(
        f"{os.environ['TRESOR_URL']}/secrets/{name}/",
        params={"api-version": "7.6"},
        headers={"Authorization": f"Bearer {os.environ['TRESOR_OWNER_TOKEN']}"},
        verify=os.environ["TRESOR_CA"],
        timeout=30,
    )
    assert raw.status_code == 200 and "tags" not in raw.json()
    with pytest.raises(ResourceNotFoundError) as e:
        owner.get_secret(name + "-missing")
    assert "innererror" not in e.value.response.json()["error"]
