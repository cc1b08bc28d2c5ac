//! `orderflow token`: signs a bearer token with the configured HS256 secret,
//! for operators of an HS256 deployment and for scripts (the bench).

use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::auth::token::{mint_hs256, Claims, MIN_SECRET_BYTES};
use crate::auth::{Authenticator, Role};
use crate::config::Config;

/// `orderflow token --role admin --sub ops`
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// `admin` or `customer`.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The subject: the customer id for customers.
    #[arg(long)]
    pub sub: String,
    /// How long the token is valid (e.g. 1h).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

fn parse_role(raw: &str) -> Result<Role, String> {
    match raw {
        "admin" => Ok(Role::Admin),
        "customer" => Ok(Role::Customer),
        _ => Err("admin or customer".into()),
    }
}

/// Prints a token a node with the same `auth` settings accepts.
pub fn run(args: &TokenArgs, config: &Config) -> anyhow::Result<()> {
    let secret = config.auth.hs256_secret.as_bytes();
    if secret.len() < MIN_SECRET_BYTES {
        bail!("set ORDERFLOW_AUTH__HS256_SECRET (at least {MIN_SECRET_BYTES} bytes) to sign tokens");
    }
    let claims = Claims::new(&args.sub, args.role, args.ttl, &config.auth);
    let token = mint_hs256(secret, &claims)?;
    // Refuse to print what the node would refuse (a customer id it cannot parse).
    Authenticator::hs256(secret, &config.auth)?
        .verify(&token)
        .context("the token would not be accepted")?;
    println!("{token}");
    Ok(())
}
