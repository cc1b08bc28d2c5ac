//! Who is calling the API: bearer JWTs carrying a subject and a role,
//! verified with an HS256 secret or an RS256 public key, or, in development
//! mode, signed with a secret made at start-up.

pub mod dev;
pub mod principal;
pub mod token;

pub use principal::{Principal, Role};
pub use token::{AuthError, Authenticator, Claims, SetupError};

use crate::config::{AuthConfig, AuthMode};

/// The authenticator `config` asks for; in dev mode it also prints the
/// development tokens, clearly marked, to standard error.
pub fn start(config: &AuthConfig) -> Result<Authenticator, SetupError> {
    match config.mode {
        AuthMode::Jwt => Authenticator::from_config(config),
        AuthMode::Dev => {
            let (authenticator, tokens) = dev::start(config)?;
            dev::announce(&tokens, config);
            Ok(authenticator)
        }
    }
}
