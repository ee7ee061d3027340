//! The vault's long-lived keys, kept out of swap where the OS allows (feature `mlock`).
//!
//! A vault holds its master key and the subkeys derived from it ([`Keys`]) for as long as it is
//! open. With the feature `mlock`, they live in an allocation of their own that is one whole,
//! page-aligned 4 KiB page, locked in RAM with `mlock` (`VirtualLock` on Windows) through the
//! `region` crate: the page is never written to swap. Because the allocation is the whole page,
//! unlocking it when the vault closes cannot unlock memory that belongs to anything else (locks
//! do not nest: one `munlock` undoes every `mlock` of a page).
//!
//! Locking is best effort: where the OS refuses (the process's `RLIMIT_MEMLOCK` is used up, or
//! the platform has no `mlock`), the keys stay in ordinary memory and the vault works as before;
//! [`Vault::keys_locked`](crate::Vault::keys_locked) says which happened. On systems whose pages
//! are larger than 4 KiB (16 KiB on Apple silicon, 64 KiB on some ARM kernels), the page that
//! holds the keys may hold other data too, and is unlocked with the keys.
//!
//! Without the feature, the keys are held inline and nothing is locked. Either way they are
//! wiped when the vault closes.

use std::ops::Deref;

use crate::storage::Keys;

/// A vault's [`Keys`], locked in RAM where the feature `mlock` is on and the OS allows.
pub(crate) struct KeyBox {
    // Declared before the keys so that it drops first: the page is unlocked, then the keys on
    // it are wiped and freed. Unlocking after the free could unlock the page of another vault
    // that the allocator had meanwhile placed at the same address.
    #[cfg(feature = "mlock")]
    lock: Option<region::LockGuard>,
    #[cfg(feature = "mlock")]
    keys: Box<KeyPage>,
    #[cfg(not(feature = "mlock"))]
    keys: Keys,
}

/// One page holding the keys and nothing else: its alignment makes the allocation start on a
/// page boundary, and a type's size is a multiple of its alignment, so it is the whole page.
#[cfg(feature = "mlock")]
#[repr(align(4096))]
struct KeyPage(Keys);

#[cfg(feature = "mlock")]
const _: () = assert!(std::mem::size_of::<KeyPage>() == 4096);

impl KeyBox {
    /// Takes the keys, and locks their page where the feature is on and the OS allows.
    pub(crate) fn new(keys: Keys) -> Self {
        #[cfg(feature = "mlock")]
        {
            let keys = Box::new(KeyPage(keys));
            let page: *const KeyPage = &*keys;
            let lock = region::lock(page, std::mem::size_of::<KeyPage>()).ok();
            KeyBox { lock, keys }
        }
        #[cfg(not(feature = "mlock"))]
        {
            KeyBox { keys }
        }
    }

    /// Whether the keys' page is locked in RAM.
    pub(crate) fn locked(&self) -> bool {
        #[cfg(feature = "mlock")]
        {
            self.lock.is_some()
        }
        #[cfg(not(feature = "mlock"))]
        {
            false
        }
    }
}

impl Deref for KeyBox {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        #[cfg(feature = "mlock")]
        {
            &self.keys.0
        }
        #[cfg(not(feature = "mlock"))]
        {
            &self.keys
        }
    }
}
