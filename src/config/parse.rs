//! Parsers of setting values: sizes with units, eviction policies, secrets inline or from a file, and the
//! small checked conversions the builder shares.

use std::path::PathBuf;

use super::ConfigError;
use crate::core::store::EvictionPolicy;
use crate::secret::Secret;

/// A secret given inline (`--FLAG`) or in a file (`--FLAG-file`), not both; a file's trailing newline is dropped.
pub(super) fn secret_from(
    flag: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("give --{flag} or --{flag}-file, not both"),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => {
            let text = std::fs::read(path).map_err(|error| ConfigError::Read {
                what: format!("--{flag}-file"),
                path: path.clone(),
                error,
            })?;
            let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
            Ok(Some(Secret::from(trimmed.strip_suffix(b"\r").unwrap_or(trimmed))))
        }
        (None, None) => Ok(None),
    }
}

/// Longest delay or bound in ms a timing flag may give: a day. Far beyond any sensible setting, and far from
/// the values whose deadlines would overflow the runtime's clock arithmetic.
pub(super) const DELAY_MS_MAX: u64 = 86_400_000;

/// `--enable-debug-command`: no (the default), yes, or local.
pub(super) fn parse_debug_command(given: Option<&str>) -> Result<crate::runtime::DebugCommand, ConfigError> {
    use crate::runtime::DebugCommand;
    Ok(match given.map(str::to_ascii_lowercase).as_deref() {
        None | Some("no") => DebugCommand::No,
        Some("yes") => DebugCommand::Yes,
        Some("local") => DebugCommand::Local,
        Some(other) => bail!("--enable-debug-command {other}: expected no, yes or local"),
    })
}

/// A duration in ms that must not be zero: `given`, or `default` when not given.
pub(super) fn positive(flag: &str, given: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match given {
        Some(0) => bail!("--{flag} 0: expected at least 1"),
        Some(ms) => Ok(ms),
        None => Ok(default),
    }
}

/// A duration given in seconds, as ms: `given`, or `default_ms` when not given.
pub(super) fn seconds_to_ms(flag: &str, given: Option<u64>, default_ms: u64) -> Result<u64, ConfigError> {
    match given {
        Some(s) => s.checked_mul(1000).ok_or_else(|| invalid!("--{flag} {s}: too large")),
        None => Ok(default_ms),
    }
}

/// Parse a size the way Redis's config does: `100`, `1k` (1000), `1kb` (1024), `5mb`, `1gb`, case-insensitive.
pub fn parse_bytes(text: &str) -> Result<u64, ConfigError> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| invalid!("invalid size {text:?}: expected a number with an optional unit"))?;
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => bail!("invalid size {text:?}: unknown unit {unit:?} (use b, k, kb, m, mb, g, gb)"),
    };
    n.checked_mul(mult).ok_or_else(|| invalid!("invalid size {text:?}: too large"))
}

/// Parse an eviction policy by its Redis name.
pub fn parse_policy(text: &str) -> Result<EvictionPolicy, ConfigError> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "allkeys-lru" => EvictionPolicy::AllKeysLru,
        "allkeys-random" => EvictionPolicy::AllKeysRandom,
        "volatile-lru" => EvictionPolicy::VolatileLru,
        "noeviction" => EvictionPolicy::NoEviction,
        other => bail!("unknown maxmemory policy {other:?} (allkeys-lru, allkeys-random, volatile-lru, noeviction)"),
    })
}
