//! One vault, many processes (feature `agent`, Unix only).
//!
//! A vault file is open in one process at a time. The **holder** ([`Holder`]) is the process
//! that has it open and unlocked (`tresor agent`, `tresor serve`, or an app); others use the
//! vault through it as **clients** ([`Client`], with methods named and typed like
//! [`Vault`](crate::Vault)'s), over a Unix domain socket at [`socket_path`].
//!
//! **Who may connect.** Only processes of the user the holder runs as: the socket is mode 0600
//! in a directory of that user's that no one else may enter (checked by both sides), and on
//! Linux the holder reads each peer's user id (`SO_PEERCRED`) and refuses any other, recording
//! the refusal in the audit log (operation `AgentConnect`, actor `uid:<n>`, error
//! `PeerRefused`). A client checks the holder's user id the same way.
//!
//! **What a client may do.** Like ssh-agent: a client acts with the holder's session, that is
//! with the role of the key slot that unlocked the holder, under the actor name it sends (the
//! holder's own when it sends none). It needs no credential of its own; every process of the
//! same user can do, while the holder runs, everything that role allows.
//!
//! **Protocol** ([`PROTOCOL_VERSION`]): length-prefixed (u32, big-endian) frames carrying a
//! version and a postcard message, at most [`MAX_MESSAGE`] bytes, checked before the body is
//! allocated; values and tokens in zeroizing buffers. A request is acted on only once it has
//! arrived whole: a client that dies mid-request leaves nothing written.
//!
//! ```
//! use std::sync::Arc;
//! use tresor::agent::{Client, Holder, HolderOptions};
//! use tresor::{Credential, Options, Vault};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let vault = Vault::create_in_memory(&Credential::generate_key()?, Options::new())?;
//! let socket = dir.path().join("s").join("vault.sock");
//! let holder = Holder::bind(&socket, Arc::new(vault), HolderOptions::new())?;
//! let serving = std::thread::spawn(move || holder.serve());
//!
//! let client = Client::connect(&socket)?.actor("test-runner")?;
//! client.set("api-key", "k-123")?;
//! assert_eq!(client.get("api-key")?.expose(), b"k-123");
//! client.lock()?;
//! assert_eq!(serving.join().unwrap()?, tresor::agent::StopReason::Locked);
//! assert!(matches!(client.get("api-key"), Err(tresor::Error::Agent { .. })));
//! # Ok::<(), tresor::Error>(())
//! ```

mod client;
mod holder;
mod path;
mod protocol;

pub use client::{Client, HolderStatus};
pub use holder::{Holder, HolderHandle, HolderOptions, StopReason};
pub use path::{socket_dir, socket_path};
pub use protocol::{MAX_MESSAGE, MAX_PAGE, PROTOCOL_VERSION};
