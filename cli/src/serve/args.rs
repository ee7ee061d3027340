//! The grammar of `tresor serve` and `tresor token` (clap derive), flattened into the command
//! line's `Command` enum.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// `tresor serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; anything else is reachable from the network
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "IP:PORT")]
    pub addr: SocketAddr,
    /// Serve this certificate chain (PEM) instead of the generated one (needs --key)
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM, PKCS#8, SEC1 or PKCS#1) of --cert
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Also name NAME (a DNS name or an IP address) in the generated certificate, and permit it
    /// in the generated CA's name constraints (repeatable). A change makes a new CA
    #[arg(long, value_name = "NAME", conflicts_with = "cert")]
    pub tls_name: Vec<String>,
    /// Keep the generated CA's private key in <vault>.tls/ca-key.pem (mode 0600). Without it the
    /// key is dropped once the server certificate is signed, and a new certificate needs a new CA
    #[arg(long, conflicts_with = "cert")]
    pub keep_ca_key: bool,
    /// Development only: accept any bearer token, as an owner. Logged loudly
    #[arg(long)]
    pub allow_any_token: bool,
    /// Log one line per request to stderr (method, path, status, caller, time taken)
    #[arg(long)]
    pub access_log: bool,
    /// Largest request body accepted, in bytes (larger ones get 413)
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub max_body: u64,
    /// Most connections served at once, counting those that completed a TLS handshake; more
    /// wait. Sockets still in their handshake are bounded apart (256, 5 s each)
    #[arg(long, default_value_t = 512, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
}

/// `tresor token …`: bearer tokens for `tresor serve`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: it cannot be shown again)
    Create(TokenCreateArgs),
    /// List tokens: id, label, role, created (never the tokens themselves)
    List(TokenListArgs),
    /// Revoke a token by id or label
    Revoke(TokenRevokeArgs),
}

/// The roles a token may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Read secrets and their listings
    Reader,
    /// Read and write secrets: set, update, delete, recover, backup, restore
    Writer,
    /// Everything a writer may, and purge
    Owner,
}

impl From<TokenRole> for tresor::Role {
    fn from(r: TokenRole) -> Self {
        match r {
            TokenRole::Reader => tresor::Role::Reader,
            TokenRole::Writer => tresor::Role::Writer,
            TokenRole::Owner => tresor::Role::Owner,
        }
    }
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token's holder may do
    #[arg(long, value_enum)]
    pub role: TokenRole,
    /// A unique label, named in audit records as `token:<label>` [default: <role>-<n>]
    #[arg(long, value_name = "L")]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `tresor token list`) or its label
    pub token: String,
}
