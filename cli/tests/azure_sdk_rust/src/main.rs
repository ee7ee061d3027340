//! The Azure SDK for Rust (`azure_security_keyvault_secrets`, `azure_identity`, `azure_core` from
//! crates.io, the versions of Cargo.lock) against `tresor serve`. run.sh starts two servers and
//! runs this program in the environment `tresor identity add` prints:
//!
//! - `AZURE_KEYVAULT_URL`, `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` and `SSL_CERT_FILE` (the vault's
//!   `ca.pem`): the unchanged `ManagedIdentityCredential` signs in with the App Service protocol,
//!   and the SDK's HTTP client (reqwest, rustls with the platform verifier) trusts the CA that
//!   `SSL_CERT_FILE` names;
//! - `TRESOR_READER_TOKEN`: a reader token of the same vault (a `TokenCredential` of six lines);
//! - `TRESOR_PP_URL`, `TRESOR_PP_CA`, `TRESOR_PP_TOKEN`: a second vault, with purge protection,
//!   reached through a reqwest client of the app's own that trusts its CA.
//!
//! Each scenario is a function; the program runs them all, prints `ok` or `FAILED` for each and
//! exits with status 1 when any failed.

use std::collections::{BTreeSet, HashMap};
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, StatusCode, Transport};
use azure_core::time::OffsetDateTime;
use azure_identity::ManagedIdentityCredential;
use azure_security_keyvault_secrets::models::{
    RestoreSecretParameters, SecretAttributes, SecretClientGetSecretOptions,
    SecretClientListSecretPropertiesVersionsOptions, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient, SecretClientOptions};
use futures::TryStreamExt as _;

type Outcome = Result<(), Box<dyn Error>>;

/// Fails the scenario with the condition's text and a message.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{}: {}", stringify!($cond), format!($($msg)+)).into());
        }
    };
}

fn env(name: &str) -> Result<String, Box<dyn Error>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set: run cli/tests/azure_sdk_rust/run.sh").into())
}

/// A fresh secret name for one scenario.
fn fresh(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("rs-{prefix}-{nanos:08x}")
}

/// What an app changes: the challenge names vault.azure.net, not 127.0.0.1.
fn options() -> SecretClientOptions {
    SecretClientOptions {
        verify_challenge_resource: Some(false),
        ..Default::default()
    }
}

/// The app's client: the unchanged managed identity, `verify_challenge_resource: false`.
fn app_client() -> Result<SecretClient, Box<dyn Error>> {
    let credential = ManagedIdentityCredential::new(None)?;
    Ok(SecretClient::new(
        &env("AZURE_KEYVAULT_URL")?,
        credential,
        Some(options()),
    )?)
}

/// A credential that hands the SDK a tresor token (`tresor token create`).
#[derive(Debug)]
struct TresorToken(String);

#[async_trait::async_trait]
impl TokenCredential for TresorToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let expires = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        Ok(AccessToken::new(self.0.clone(), expires))
    }
}

fn token_client(
    url: &str,
    token: String,
    client_options: ClientOptions,
) -> Result<SecretClient, Box<dyn Error>> {
    let options = SecretClientOptions {
        client_options,
        ..options()
    };
    Ok(SecretClient::new(
        url,
        Arc::new(TresorToken(token)),
        Some(options),
    )?)
}

/// The purge-protected vault, through a reqwest client that trusts its CA (and the system's).
fn protected_client() -> Result<SecretClient, Box<dyn Error>> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(env("TRESOR_PP_CA")?)?)?;
    let http = reqwest::Client::builder().tls_certs_merge([ca]).build()?;
    let client_options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        ..Default::default()
    };
    token_client(
        &env("TRESOR_PP_URL")?,
        env("TRESOR_PP_TOKEN")?,
        client_options,
    )
}

/// The error and its sources, one line: the SDK's Display shows only the outermost message.
fn chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn status_of<T>(result: azure_core::Result<T>) -> Option<StatusCode> {
    result.err().and_then(|e| e.http_status())
}

fn set_params(value: &str) -> SetSecretParameters {
    SetSecretParameters {
        value: Some(value.into()),
        ..Default::default()
    }
}

async fn set(client: &SecretClient, name: &str, value: &str) -> Result<String, Box<dyn Error>> {
    let secret = client
        .set_secret(name, set_params(value).try_into()?, None)
        .await?
        .into_model()?;
    check!(
        secret.value.as_deref() == Some(value),
        "set returned {:?}",
        secret.value
    );
    Ok(secret
        .resource_id()?
        .version
        .ok_or("no version in the secret's id")?)
}

async fn get_value(
    client: &SecretClient,
    name: &str,
    version: Option<String>,
) -> Result<Option<String>, Box<dyn Error>> {
    let options = SecretClientGetSecretOptions {
        secret_version: version,
        ..Default::default()
    };
    Ok(client
        .get_secret(name, Some(options))
        .await?
        .into_model()?
        .value)
}

/// Deletes, then polls until the deleted secret is there (the SDK's delete is one call, no poller).
async fn delete_and_wait(client: &SecretClient, name: &str) -> Outcome {
    let deleted = client.delete_secret(name, None).await?.into_model()?;
    check!(
        deleted
            .recovery_id
            .as_deref()
            .is_some_and(|id| id.ends_with(&format!("/deletedsecrets/{name}"))),
        "recovery id {:?}",
        deleted.recovery_id
    );
    for _ in 0..100 {
        match client.get_deleted_secret(name, None).await {
            Ok(_) => return Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(format!("{name} was not deleted after 100 polls").into())
}

async fn set_with_tags_content_type_expiry_then_get_latest_and_by_version() -> Outcome {
    let c = app_client()?;
    let name = fresh("set");
    let expires = OffsetDateTime::now_utc() + Duration::from_secs(30 * 86400);
    let params = SetSecretParameters {
        value: Some("hunter2".into()),
        content_type: Some("text/plain".into()),
        tags: Some(HashMap::from([("env".into(), "dev".into())])),
        secret_attributes: Some(SecretAttributes {
            expires: Some(expires),
            ..Default::default()
        }),
    };
    let first = c
        .set_secret(&name, params.try_into()?, None)
        .await?
        .into_model()?;
    check!(
        first.value.as_deref() == Some("hunter2"),
        "{:?}",
        first.value
    );
    check!(
        first.content_type.as_deref() == Some("text/plain"),
        "{:?}",
        first.content_type
    );
    check!(
        first.tags == Some(HashMap::from([("env".into(), "dev".into())])),
        "{:?}",
        first.tags
    );
    let attributes = first.attributes.clone().ok_or("no attributes")?;
    check!(
        attributes.expires.map(OffsetDateTime::unix_timestamp) == Some(expires.unix_timestamp()),
        "expires {:?}",
        attributes.expires
    );
    check!(attributes.enabled == Some(true), "{:?}", attributes.enabled);
    let first_version = first.resource_id()?.version.ok_or("no version")?;
    check!(first_version.len() == 32, "version {first_version}");
    let second_version = set(&c, &name, "correct horse").await?;
    let latest = c.get_secret(&name, None).await?.into_model()?;
    check!(
        latest.value.as_deref() == Some("correct horse"),
        "{:?}",
        latest.value
    );
    check!(
        latest.resource_id()?.version.as_deref() == Some(second_version.as_str()),
        "latest version"
    );
    check!(
        get_value(&c, &name, Some(first_version)).await?.as_deref() == Some("hunter2"),
        "by version"
    );
    let unknown = c
        .get_secret(
            &name,
            Some(SecretClientGetSecretOptions {
                secret_version: Some("0".repeat(32)),
                ..Default::default()
            }),
        )
        .await;
    check!(
        status_of(unknown) == Some(StatusCode::NotFound),
        "an unknown version"
    );
    Ok(())
}

async fn update_properties() -> Outcome {
    let c = app_client()?;
    let name = fresh("update");
    set(&c, &name, "v").await?;
    let params = UpdateSecretPropertiesParameters {
        content_type: Some("application/json".into()),
        tags: Some(HashMap::from([("team".into(), "payments".into())])),
        secret_attributes: None,
    };
    let updated = c
        .update_secret_properties(&name, params.try_into()?, None)
        .await?
        .into_model()?;
    check!(
        updated.content_type.as_deref() == Some("application/json"),
        "{:?}",
        updated.content_type
    );
    let got = c.get_secret(&name, None).await?.into_model()?;
    check!(got.value.as_deref() == Some("v"), "{:?}", got.value);
    check!(
        got.tags == Some(HashMap::from([("team".into(), "payments".into())])),
        "{:?}",
        got.tags
    );
    // Disabled: reads are refused with 403 until it is enabled again.
    let disable = UpdateSecretPropertiesParameters {
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.update_secret_properties(&name, disable.try_into()?, None)
        .await?;
    check!(
        status_of(c.get_secret(&name, None).await) == Some(StatusCode::Forbidden),
        "a disabled secret"
    );
    Ok(())
}

async fn list_more_than_25_secrets_over_all_pages() -> Outcome {
    let c = app_client()?;
    let prefix = fresh("page");
    let names: BTreeSet<String> = (0..30).map(|i| format!("{prefix}-{i}")).collect();
    for n in &names {
        set(&c, n, "x").await?;
    }
    // The default page (25 at most) over every page, as an app iterates it.
    let mut seen = Vec::new();
    let mut pages = c.list_secret_properties(None)?.into_pages();
    let mut page_count = 0;
    while let Some(page) = pages.try_next().await? {
        let page = page.into_model()?;
        check!(page.value.len() <= 25, "a page of {}", page.value.len());
        page_count += 1;
        for p in page.value {
            seen.push(p.resource_id()?.name);
        }
    }
    check!(
        page_count >= 2,
        "{page_count} page(s) for more than 25 secrets"
    );
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    check!(unique.len() == seen.len(), "an item was listed twice");
    check!(
        names.is_subset(&unique),
        "missing: {:?}",
        names.difference(&unique).collect::<Vec<_>>()
    );
    // The item stream walks the pages too.
    let items: Vec<_> = c.list_secret_properties(None)?.try_collect().await?;
    check!(
        items.len() == seen.len(),
        "{} items, {} in pages",
        items.len(),
        seen.len()
    );
    Ok(())
}

async fn list_versions() -> Outcome {
    let c = app_client()?;
    let name = fresh("versions");
    let mut versions = BTreeSet::new();
    for i in 0..7 {
        versions.insert(set(&c, &name, &format!("v{i}")).await?);
    }
    let options = SecretClientListSecretPropertiesVersionsOptions {
        maxresults: Some(3),
        ..Default::default()
    };
    let pages: Vec<_> = c
        .list_secret_properties_versions(&name, Some(options))?
        .into_pages()
        .try_collect()
        .await?;
    check!(
        pages.len() == 3,
        "{} pages of 3 for 7 versions",
        pages.len()
    );
    let mut listed = BTreeSet::new();
    for page in pages {
        for p in page.into_model()?.value {
            let id = p.resource_id()?;
            check!(id.name == name, "{}", id.name);
            listed.insert(id.version.ok_or("no version")?);
        }
    }
    check!(listed == versions, "listed {listed:?}, set {versions:?}");
    Ok(())
}

async fn delete_wait_get_and_list_deleted_then_recover() -> Outcome {
    let c = app_client()?;
    let name = fresh("delete");
    let params = SetSecretParameters {
        value: Some("keep me".into()),
        tags: Some(HashMap::from([("k".into(), "v".into())])),
        ..Default::default()
    };
    c.set_secret(&name, params.try_into()?, None).await?;
    delete_and_wait(&c, &name).await?;
    check!(
        status_of(c.get_secret(&name, None).await) == Some(StatusCode::NotFound),
        "a deleted secret"
    );
    let got = c.get_deleted_secret(&name, None).await?.into_model()?;
    let (deleted, purge) = (
        got.deleted_date.ok_or("no deletedDate")?,
        got.scheduled_purge_date.ok_or("no scheduledPurgeDate")?,
    );
    check!(purge > deleted, "purge {purge} before deletion {deleted}");
    check!(
        got.tags == Some(HashMap::from([("k".into(), "v".into())])),
        "{:?}",
        got.tags
    );
    let deleted_names: Vec<String> = c
        .list_deleted_secret_properties(None)?
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .filter_map(|d| {
            d.id.as_deref()
                .and_then(|id| id.rsplit('/').next())
                .map(String::from)
        })
        .collect();
    check!(
        deleted_names.contains(&name),
        "{name} not in {deleted_names:?}"
    );
    let recovered = c.recover_deleted_secret(&name, None).await?.into_model()?;
    check!(
        recovered.resource_id()?.name == name,
        "recovered {:?}",
        recovered.id
    );
    check!(
        get_value(&c, &name, None).await?.as_deref() == Some("keep me"),
        "after recovery"
    );
    check!(
        status_of(c.get_deleted_secret(&name, None).await) == Some(StatusCode::NotFound),
        "deleted after recovery"
    );
    Ok(())
}

async fn purge() -> Outcome {
    let c = app_client()?;
    let name = fresh("purge");
    set(&c, &name, "gone soon").await?;
    delete_and_wait(&c, &name).await?;
    c.purge_deleted_secret(&name, None).await?;
    check!(
        status_of(c.get_deleted_secret(&name, None).await) == Some(StatusCode::NotFound),
        "after purge"
    );
    set(&c, &name, "reborn").await?;
    Ok(())
}

async fn purge_refused_under_purge_protection() -> Outcome {
    let c = protected_client()?;
    let name = fresh("protected");
    set(&c, &name, "x").await?;
    delete_and_wait(&c, &name).await?;
    let err = c
        .purge_deleted_secret(&name, None)
        .await
        .err()
        .ok_or("purge was not refused")?;
    check!(err.http_status() == Some(StatusCode::Forbidden), "{err}");
    check!(format!("{err}").contains("purge protection"), "{err}");
    check!(
        c.get_deleted_secret(&name, None).await.is_ok(),
        "the deleted secret is gone"
    );
    Ok(())
}

async fn backup_and_restore() -> Outcome {
    let c = app_client()?;
    let name = fresh("backup");
    let first = set(&c, &name, "v1").await?;
    set(&c, &name, "v2").await?;
    let blob = c
        .backup_secret(&name, None)
        .await?
        .into_model()?
        .value
        .ok_or("no backup value")?;
    check!(blob.len() > 32, "a backup of {} bytes", blob.len());
    let restore = |bytes: Vec<u8>| RestoreSecretParameters {
        secret_backup: Some(bytes),
    };
    let exists = c
        .restore_secret(restore(blob.clone()).try_into()?, None)
        .await;
    check!(
        status_of(exists) == Some(StatusCode::Conflict),
        "restore over an existing secret"
    );
    delete_and_wait(&c, &name).await?;
    c.purge_deleted_secret(&name, None).await?;
    let restored = c
        .restore_secret(restore(blob.clone()).try_into()?, None)
        .await?
        .into_model()?;
    check!(restored.resource_id()?.name == name, "{:?}", restored.id);
    check!(
        get_value(&c, &name, None).await?.as_deref() == Some("v2"),
        "latest after restore"
    );
    check!(
        get_value(&c, &name, Some(first)).await?.as_deref() == Some("v1"),
        "first version after restore"
    );
    let truncated = c
        .restore_secret(restore(blob[..blob.len() - 5].to_vec()).try_into()?, None)
        .await;
    check!(
        status_of(truncated) == Some(StatusCode::BadRequest),
        "a truncated backup"
    );
    Ok(())
}

async fn errors_as_the_sdk_reports_them() -> Outcome {
    let url = env("AZURE_KEYVAULT_URL")?;
    let c = app_client()?;
    // 401: a token the vault does not know.
    let stranger = token_client(
        &url,
        format!("tresor_{}", "0".repeat(64)),
        ClientOptions::default(),
    )?;
    check!(
        status_of(stranger.get_secret("anything", None).await) == Some(StatusCode::Unauthorized),
        "unknown token"
    );
    // 403: a reader writing.
    let name = fresh("errors");
    set(&c, &name, "shared").await?;
    let reader = token_client(&url, env("TRESOR_READER_TOKEN")?, ClientOptions::default())?;
    check!(
        get_value(&reader, &name, None).await?.as_deref() == Some("shared"),
        "a reader reads"
    );
    check!(
        status_of(
            reader
                .set_secret(&name, set_params("nope").try_into()?, None)
                .await
        ) == Some(StatusCode::Forbidden),
        "a reader sets"
    );
    check!(
        status_of(reader.delete_secret(&name, None).await) == Some(StatusCode::Forbidden),
        "a reader deletes"
    );
    // 404.
    check!(
        status_of(c.get_secret(&fresh("absent"), None).await) == Some(StatusCode::NotFound),
        "an absent name"
    );
    // 409: setting a name that is deleted but recoverable.
    delete_and_wait(&c, &name).await?;
    let err = c
        .set_secret(&name, set_params("y").try_into()?, None)
        .await
        .err()
        .ok_or("set on a deleted name")?;
    check!(err.http_status() == Some(StatusCode::Conflict), "{err}");
    // 400: a name Key Vault does not allow.
    check!(
        status_of(
            c.set_secret("bad_name", set_params("x").try_into()?, None)
                .await
        ) == Some(StatusCode::BadRequest),
        "bad name"
    );
    Ok(())
}

async fn managed_identity_token_is_short_lived_and_not_the_header() -> Outcome {
    let credential = ManagedIdentityCredential::new(None)?;
    let token = credential
        .get_token(&["https://vault.azure.net/.default"], None)
        .await?;
    check!(
        token.token.secret().starts_with("tresor_at_"),
        "not an access token"
    );
    check!(
        token.token.secret() != env("IDENTITY_HEADER")?,
        "the identity header came back"
    );
    let lifetime: i64 = env("TRESOR_MI_LIFETIME")?.parse()?;
    let expected = OffsetDateTime::now_utc().unix_timestamp() + lifetime;
    check!(
        (token.expires_on.unix_timestamp() - expected).abs() < 120,
        "expires {}",
        token.expires_on
    );
    Ok(())
}

async fn without_the_option_the_sdk_refuses_the_challenge() -> Outcome {
    let client = SecretClient::new(
        &env("AZURE_KEYVAULT_URL")?,
        ManagedIdentityCredential::new(None)?,
        None,
    )?;
    let err = client
        .get_secret(&fresh("strict"), None)
        .await
        .err()
        .ok_or("the challenge was accepted")?;
    check!(
        chain(&err).contains("verify_challenge_resource"),
        "{}",
        chain(&err)
    );
    Ok(())
}

/// Run without `SSL_CERT_FILE`: the SDK's client does not trust tresor's CA.
async fn without_ssl_cert_file_the_ca_is_not_trusted() -> Outcome {
    check!(
        std::env::var_os("SSL_CERT_FILE").is_none(),
        "SSL_CERT_FILE is set"
    );
    // No retries: the SDK would retry the failed connection with growing delays for a minute.
    let mut options = options();
    options.client_options.retry = RetryOptions::none();
    let client = SecretClient::new(
        &env("AZURE_KEYVAULT_URL")?,
        ManagedIdentityCredential::new(None)?,
        Some(options),
    )?;
    let err = client
        .get_secret("anything", None)
        .await
        .err()
        .ok_or("an untrusted CA was accepted")?;
    check!(err.http_status().is_none(), "{}", chain(&err));
    check!(chain(&err).contains("certificate"), "{}", chain(&err));
    Ok(())
}

/// Run with an `IDENTITY_HEADER` the vault does not know: no token.
async fn a_wrong_identity_header_gets_no_token() -> Outcome {
    let credential = ManagedIdentityCredential::new(None)?;
    let err = credential
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .err()
        .ok_or("a wrong identity header got a token")?;
    // The credential reports a Credential error whose text carries the endpoint's 401 body.
    check!(
        matches!(err.kind(), ErrorKind::Credential),
        "{}",
        chain(&err)
    );
    check!(
        chain(&err).contains("X-IDENTITY-HEADER is not one of an identity"),
        "{}",
        chain(&err)
    );
    Ok(())
}

type Scenario = (&'static str, fn() -> Pin<Box<dyn Future<Output = Outcome>>>);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let untrusted: &[Scenario] = &[("without SSL_CERT_FILE the CA is not trusted", || {
        Box::pin(without_ssl_cert_file_the_ca_is_not_trusted())
    })];
    let wrong_header: &[Scenario] = &[("a wrong IDENTITY_HEADER gets no token", || {
        Box::pin(a_wrong_identity_header_gets_no_token())
    })];
    let all: &[Scenario] = &[
        (
            "set with tags, content type, expiry; get latest and by version",
            || Box::pin(set_with_tags_content_type_expiry_then_get_latest_and_by_version()),
        ),
        ("update properties (and a disabled secret is 403)", || {
            Box::pin(update_properties())
        }),
        ("list more than 25 secrets over all pages", || {
            Box::pin(list_more_than_25_secrets_over_all_pages())
        }),
        ("list versions in pages of 3", || Box::pin(list_versions())),
        ("delete and wait, get and list deleted, recover", || {
            Box::pin(delete_wait_get_and_list_deleted_then_recover())
        }),
        ("purge", || Box::pin(purge())),
        (
            "purge refused under purge protection (second vault, own reqwest client)",
            || Box::pin(purge_refused_under_purge_protection()),
        ),
        ("backup and restore", || Box::pin(backup_and_restore())),
        ("errors 401, 403, 404, 409, 400", || {
            Box::pin(errors_as_the_sdk_reports_them())
        }),
        (
            "managed identity token: short-lived, not the header",
            || Box::pin(managed_identity_token_is_short_lived_and_not_the_header()),
        ),
        (
            "without verify_challenge_resource: false the SDK refuses",
            || Box::pin(without_the_option_the_sdk_refuses_the_challenge()),
        ),
    ];
    // run.sh runs the program three times: `all` in the environment the identity prints, then
    // `untrusted` without SSL_CERT_FILE and `wrong-header` with another IDENTITY_HEADER.
    let scenarios = match std::env::args().nth(1).as_deref() {
        None | Some("all") => all,
        Some("untrusted") => untrusted,
        Some("wrong-header") => wrong_header,
        Some(other) => {
            eprintln!("unknown mode {other}: all, untrusted or wrong-header");
            std::process::exit(2);
        }
    };
    let mut failed = 0;
    for (name, run) in scenarios {
        match run().await {
            Ok(()) => println!("ok      {name}"),
            Err(e) => {
                failed += 1;
                println!("FAILED  {name}: {e}");
            }
        }
    }
    println!("{} passed, {failed} failed", scenarios.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
