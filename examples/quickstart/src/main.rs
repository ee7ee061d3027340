//! tresor's main job on a throwaway vault: create, set, versions, get, delete and recover,
//! audit verification, and reopening with the key.
//!
//! Run with `cargo run -p quickstart` (from anywhere in the workspace).

use tresor::{Credential, Options, PropertiesUpdate, SetOptions, Vault};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tresor-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("demo.tresor");
    let key = Credential::generate_key()?;

    let started = std::time::Instant::now();
    let vault = Vault::create(&path, &key, Options::new())?;
    println!("created {} in {:?}", path.display(), started.elapsed());

    let v1 = vault.set_with(
        "db-password",
        "hunter2",
        &SetOptions::new()
            .content_type("text/plain")
            .tag("env", "dev"),
    )?;
    let v2 = vault.set("db-password", "correct horse battery staple")?;
    println!(
        "set db-password: versions {} and {}",
        v1.version, v2.version
    );

    for p in vault.list_versions("db-password")? {
        println!(
            "  version {} (#{}) created {}",
            p.version,
            p.sequence,
            p.created.unix()
        );
    }
    let current = vault.get("db-password")?;
    println!(
        "current value has {} bytes (not printed)",
        current.expose().len()
    );
    let old = vault.get_version("db-password", &v1.version)?;
    assert_eq!(old.expose(), b"hunter2");

    vault.update_properties(
        "db-password",
        Some(&v1.version),
        &PropertiesUpdate::new().enabled(false),
    )?;
    let deleted = vault.delete("db-password")?;
    println!(
        "deleted; scheduled purge at {}",
        deleted.scheduled_purge.unix()
    );
    vault.recover("db-password")?;
    println!(
        "recovered: {} versions",
        vault.list_versions("db-password")?.len()
    );

    let records = vault.verify_audit()?;
    let checkpoint = vault.checkpoint()?;
    println!("audit chain verified: {records} records; checkpoint {checkpoint}");
    for r in vault.audit(0, 100)? {
        println!(
            "  #{:<3} {:<22} {:<12} {}",
            r.seq,
            r.operation.as_str(),
            r.name.as_deref().unwrap_or("-"),
            r.error.as_deref().unwrap_or("ok")
        );
    }
    drop(vault);

    let started = std::time::Instant::now();
    let vault = Vault::open(&path, &key, Options::new().expect_checkpoint(checkpoint))?;
    println!(
        "reopened with the key and the checkpoint in {:?}",
        started.elapsed()
    );
    assert_eq!(
        vault.get("db-password")?.expose(),
        b"correct horse battery staple"
    );
    vault.verify_audit()?;
    drop(vault);

    std::fs::remove_dir_all(&dir)?;
    println!("ok");
    Ok(())
}
