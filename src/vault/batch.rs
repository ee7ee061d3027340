//! Many writes in one transaction: imports and bulk loads.

use super::Vault;
use super::secrets::SetTables;
use crate::access::Operation;
use crate::error::Result;
use crate::secret::{SecretProperties, SetOptions};

impl Vault {
    /// Writes many secrets in one transaction and one durable commit: all of them or none.
    /// Each item gets its own `SecretSet` audit record, followed by one `SecretImport` record.
    ///
    /// The iterator is consumed inside the transaction, so a caller can count items as they are
    /// written (for a progress bar). The first invalid item (bad name, value too large, a name
    /// held by a deleted secret, a failed check-and-set, …) fails the whole batch with its error.
    ///
    /// ```
    /// use tresor::{Credential, Options, SetOptions, Vault};
    ///
    /// let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
    /// let plain = SetOptions::new();
    /// let items = [("db-user", b"app".as_slice(), &plain), ("db-password", b"hunter2", &plain)];
    /// let written = vault.set_many(items)?;
    /// assert_eq!(written.len(), 2);
    /// assert_eq!(vault.get("db-user")?.expose(), b"app");
    /// # Ok::<(), tresor::Error>(())
    /// ```
    pub fn set_many<'a, I>(&self, items: I) -> Result<Vec<SecretProperties>>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8], &'a SetOptions)>,
    {
        let max = self.inner.max_value_len;
        let actor = self.actor.clone();
        self.write(Operation::SecretImport, None, |cx| {
            let mut out = Vec::new();
            let mut tables = SetTables::open(cx.txn)?;
            for (name, value, options) in items {
                let props = cx.set_in(&mut tables, name, value, max, options)?;
                cx.caller_record(&actor, Operation::SecretSet, &props.name, props.version.0);
                out.push(props);
            }
            cx.version = None;
            Ok(out)
        })
    }
}
