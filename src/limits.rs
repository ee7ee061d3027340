//! The limits of names, values, tags and content types (Azure Key Vault's, where it has them).

/// The longest secret name (Azure: 127 characters).
pub const MAX_NAME_LEN: usize = 127;
/// The default value size limit (Azure: 25 KiB).
pub const DEFAULT_VALUE_LIMIT: usize = 25 * 1024;
/// The largest value size limit a vault can be opened with (4 MiB).
pub const MAX_VALUE_LIMIT: usize = 4 * 1024 * 1024;
/// The most tags a version may carry (Azure: 15).
pub const MAX_TAGS: usize = 15;
/// The longest tag name or tag value, in characters (Azure: 512).
pub const MAX_TAG_LEN: usize = 512;
/// The longest content type, in characters (Azure: 255).
pub const MAX_CONTENT_TYPE_LEN: usize = 255;
