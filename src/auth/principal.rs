//! The caller a valid token names, and what it may touch.

use schemas::CustomerId;
use serde::{Deserialize, Serialize};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Their own orders, notifications and preferences; reading SKUs.
    Customer,
    /// Everything: every order, inventory, dead letters.
    Admin,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An operator or back office, named by the token's `sub`.
    Admin {
        /// The token's subject.
        subject: String,
    },
    /// A customer; the token's `sub` is their customer id.
    Customer(CustomerId),
}

impl Principal {
    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    /// Whether this caller may see and act on what `customer` owns.
    pub fn may_act_for(&self, customer: &CustomerId) -> bool {
        match self {
            Principal::Admin { .. } => true,
            Principal::Customer(me) => me == customer,
        }
    }

    /// The key its requests are rate-limited under; roles are kept apart so
    /// an admin named like a customer does not share the customer's budget.
    pub fn rate_key(&self) -> String {
        match self {
            Principal::Admin { subject } => format!("admin:{subject}"),
            Principal::Customer(id) => format!("customer:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_act_only_for_themselves_and_admins_for_everyone() {
        let alice = CustomerId::parse("alice").unwrap();
        let bob = CustomerId::parse("bob").unwrap();
        let as_alice = Principal::Customer(alice.clone());
        assert!(as_alice.may_act_for(&alice));
        assert!(!as_alice.may_act_for(&bob));
        let admin = Principal::Admin {
            subject: "alice".into(),
        };
        assert!(admin.may_act_for(&bob));
        assert_ne!(admin.rate_key(), as_alice.rate_key());
    }
}
