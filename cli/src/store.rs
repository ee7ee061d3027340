//! What the commands work on: the vault file opened in this process ([`Vault`]), or the
//! process that holds it (an agent or `tresor serve`, through `tresor::agent::Client`). Both
//! give the same answers and errors, so a command's output and exit status do not depend on
//! the path it took.

use std::time::Duration;

use tresor::{
    AuditRecord, Checkpoint, DeletedSecret, GetOptions, Page, PropertiesUpdate, Result, Secret,
    SecretProperties, SetOptions, SlotInfo, Vault, VaultSettings, VersionId,
};
#[cfg(feature = "server")]
use tresor::{NewToken, Role, TokenInfo};

/// The vault operations the commands use, named and typed as `Vault`'s.
pub trait Store {
    fn set_with(&self, name: &str, value: &[u8], o: &SetOptions) -> Result<SecretProperties>;
    fn set_many<'a>(
        &self,
        items: &mut dyn Iterator<Item = (&'a str, &'a [u8], &'a SetOptions)>,
    ) -> Result<Vec<SecretProperties>>;
    fn get_with(&self, name: &str, o: &GetOptions) -> Result<Secret>;
    fn get(&self, name: &str) -> Result<Secret> {
        self.get_with(name, &GetOptions::default())
    }
    fn properties(&self, name: &str, version: Option<&VersionId>) -> Result<SecretProperties>;
    fn update_properties(
        &self,
        name: &str,
        version: Option<&VersionId>,
        u: &PropertiesUpdate,
    ) -> Result<SecretProperties>;
    fn list_all(&self) -> Result<Vec<SecretProperties>>;
    fn list_versions(&self, name: &str) -> Result<Vec<SecretProperties>>;
    fn expiring(&self, within: Duration) -> Result<Vec<SecretProperties>>;
    fn delete(&self, name: &str) -> Result<DeletedSecret>;
    fn recover(&self, name: &str) -> Result<SecretProperties>;
    fn purge(&self, name: &str) -> Result<()>;
    fn deleted_properties(&self, name: &str) -> Result<DeletedSecret>;
    fn list_deleted(&self, cursor: Option<&str>, limit: usize) -> Result<Page<DeletedSecret>>;
    fn backup_secret(&self, name: &str) -> Result<Vec<u8>>;
    fn restore_secret(&self, blob: &[u8]) -> Result<SecretProperties>;
    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>>;
    fn audit_len(&self) -> Result<u64>;
    fn verify_audit(&self) -> Result<u64>;
    fn checkpoint(&self) -> Result<Checkpoint>;
    fn settings(&self) -> Result<VaultSettings>;
    fn slots(&self) -> Result<Vec<SlotInfo>>;
    /// The slot that unlocked the vault (the holder's, through a holder).
    fn unlocked_slot(&self) -> Option<u32>;
    #[cfg(feature = "server")]
    fn create_token(&self, label: &str, role: Role) -> Result<NewToken>;
    #[cfg(feature = "server")]
    fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    #[cfg(feature = "server")]
    fn revoke_token(&self, id: &str) -> Result<TokenInfo>;
}

/// Forwards each method to the type's own method of the same name.
macro_rules! forward {
    ($t:ty, $unlocked:expr) => {
        impl Store for $t {
            fn set_with(
                &self,
                name: &str,
                value: &[u8],
                o: &SetOptions,
            ) -> Result<SecretProperties> {
                <$t>::set_with(self, name, value, o)
            }
            fn set_many<'a>(
                &self,
                items: &mut dyn Iterator<Item = (&'a str, &'a [u8], &'a SetOptions)>,
            ) -> Result<Vec<SecretProperties>> {
                <$t>::set_many(self, items)
            }
            fn get_with(&self, name: &str, o: &GetOptions) -> Result<Secret> {
                <$t>::get_with(self, name, o)
            }
            fn properties(
                &self,
                name: &str,
                version: Option<&VersionId>,
            ) -> Result<SecretProperties> {
                <$t>::properties(self, name, version)
            }
            fn update_properties(
                &self,
                name: &str,
                version: Option<&VersionId>,
                u: &PropertiesUpdate,
            ) -> Result<SecretProperties> {
                <$t>::update_properties(self, name, version, u)
            }
            fn list_all(&self) -> Result<Vec<SecretProperties>> {
                <$t>::list_all(self)
            }
            fn list_versions(&self, name: &str) -> Result<Vec<SecretProperties>> {
                <$t>::list_versions(self, name)
            }
            fn expiring(&self, within: Duration) -> Result<Vec<SecretProperties>> {
                <$t>::expiring(self, within)
            }
            fn delete(&self, name: &str) -> Result<DeletedSecret> {
                <$t>::delete(self, name)
            }
            fn recover(&self, name: &str) -> Result<SecretProperties> {
                <$t>::recover(self, name)
            }
            fn purge(&self, name: &str) -> Result<()> {
                <$t>::purge(self, name)
            }
            fn deleted_properties(&self, name: &str) -> Result<DeletedSecret> {
                <$t>::deleted_properties(self, name)
            }
            fn list_deleted(
                &self,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<Page<DeletedSecret>> {
                <$t>::list_deleted(self, cursor, limit)
            }
            fn backup_secret(&self, name: &str) -> Result<Vec<u8>> {
                <$t>::backup_secret(self, name)
            }
            fn restore_secret(&self, blob: &[u8]) -> Result<SecretProperties> {
                <$t>::restore_secret(self, blob)
            }
            fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
                <$t>::audit(self, after, limit)
            }
            fn audit_len(&self) -> Result<u64> {
                <$t>::audit_len(self)
            }
            fn verify_audit(&self) -> Result<u64> {
                <$t>::verify_audit(self)
            }
            fn checkpoint(&self) -> Result<Checkpoint> {
                <$t>::checkpoint(self)
            }
            fn settings(&self) -> Result<VaultSettings> {
                <$t>::settings(self)
            }
            fn slots(&self) -> Result<Vec<SlotInfo>> {
                <$t>::slots(self)
            }
            fn unlocked_slot(&self) -> Option<u32> {
                let f: fn(&$t) -> Option<u32> = $unlocked;
                f(self)
            }
            #[cfg(feature = "server")]
            fn create_token(&self, label: &str, role: Role) -> Result<NewToken> {
                <$t>::create_token(self, label, role)
            }
            #[cfg(feature = "server")]
            fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
                <$t>::list_tokens(self)
            }
            #[cfg(feature = "server")]
            fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
                <$t>::revoke_token(self, id)
            }
        }
    };
}

forward!(Vault, |v| Vault::unlocked_slot(v));
#[cfg(unix)]
forward!(tresor::agent::Client, |c| c
    .status()
    .ok()
    .and_then(|s| s.unlocked_slot));
