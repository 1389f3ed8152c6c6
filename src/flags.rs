//! Flag groups parsed alone, below the `serve` command that assembles them.

use clap::{Args, FromArgMatches};

/// Parses one stage's flag group alone (tests, benches and embedding build a stage from it).
pub fn parse_args<T: Args + FromArgMatches>(argv: &[&str]) -> Result<T, String> {
    let cmd = T::augment_args(clap::Command::new("frontdoor").no_binary_name(true));
    let matches = cmd.try_get_matches_from(argv).map_err(|e| e.render().to_string())?;
    T::from_arg_matches(&matches).map_err(|e| e.to_string())
}
