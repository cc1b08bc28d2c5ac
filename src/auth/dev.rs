//! Development mode: a random secret made at each start, and an admin and a
//! customer token signed with it, printed so the quickstart needs no setup.
//! The tokens stop working when the node stops; nothing is fixed in the repo.

use ring::rand::{SecureRandom, SystemRandom};

use super::principal::Role;
use super::token::{mint_hs256, Authenticator, Claims, SetupError};
use crate::config::AuthConfig;

/// The tokens printed at start-up.
#[derive(Debug, Clone)]
pub struct DevTokens {
    /// An admin's.
    pub admin: String,
    /// `auth.dev_customer`'s.
    pub customer: String,
}

/// A fresh secret, its authenticator, and the two tokens.
pub fn start(config: &AuthConfig) -> Result<(Authenticator, DevTokens), SetupError> {
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| SetupError::NoRandom)?;
    let authenticator = Authenticator::hs256(&secret, config)?;
    let ttl = config.dev_token_ttl;
    let tokens = DevTokens {
        admin: mint_hs256(&secret, &Claims::new("dev-admin", Role::Admin, ttl, config))?,
        customer: mint_hs256(&secret, &Claims::new(&config.dev_customer, Role::Customer, ttl, config))?,
    };
    Ok((authenticator, tokens))
}

/// Prints the tokens to standard error, marked so nobody mistakes this for production.
pub fn announce(tokens: &DevTokens, config: &AuthConfig) {
    tracing::warn!("DEVELOPMENT MODE: API tokens are signed with a random per-start secret; set auth.mode = \"jwt\" for production");
    eprintln!(
        "\n==================== DEVELOPMENT MODE — NOT FOR PRODUCTION ====================\n\
         Tokens signed with a random secret made at this start (valid {ttl}, until the node stops):\n\
         admin:              export ORDERFLOW_TOKEN={admin}\n\
         customer {customer:<9}  export CUSTOMER_TOKEN={customer_token}\n\
         Use them as  -H \"Authorization: Bearer $ORDERFLOW_TOKEN\".  Production: auth.mode = \"jwt\".\n\
         ================================================================================\n",
        ttl = humantime::format_duration(config.dev_token_ttl),
        admin = tokens.admin,
        customer = format!("{:?}:", config.dev_customer),
        customer_token = tokens.customer,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;

    #[test]
    fn each_start_has_its_own_secret() {
        let config = AuthConfig::default();
        let (first, tokens) = start(&config).unwrap();
        let (second, _) = start(&config).unwrap();
        assert!(first.verify(&tokens.admin).is_ok_and(|p| p.is_admin()));
        assert!(matches!(first.verify(&tokens.customer), Ok(Principal::Customer(c)) if c.as_str() == "alice"));
        assert!(
            second.verify(&tokens.admin).is_err(),
            "a token outlives only its own start"
        );
    }
}
