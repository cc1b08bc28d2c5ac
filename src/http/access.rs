//! Who may touch what: the caller as an extractor, and ownership checks
//! that need the entity (an order's customer).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use schemas::{CustomerId, OrderId};

use super::problem::Problem;
use super::views;
use super::AppState;
use crate::auth::Principal;

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        // The guard puts it there; a route outside the guard has no caller.
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Problem::unauthorized("this request needs an Authorization: Bearer token"))
    }
}

/// 403 unless the caller is `customer` or an admin; for paths and bodies
/// that name the customer, so the caller already knows the id exists.
pub fn require_customer(principal: &Principal, customer: &CustomerId, field: &str) -> Result<(), Problem> {
    if principal.may_act_for(customer) {
        Ok(())
    } else {
        Err(Problem {
            errors: vec![super::problem::FieldError {
                field: field.to_owned(),
                message: "a customer may act only for themselves (the token's sub)".into(),
            }],
            ..Problem::forbidden(format!("{field} must be the caller's own customer id"))
        })
    }
}

/// 404 unless the caller owns order `id` or is an admin. Someone else's
/// order answers exactly like a missing one, so ids cannot be probed.
pub async fn require_order(app: &AppState, principal: &Principal, id: OrderId) -> Result<(), Problem> {
    if principal.is_admin() {
        return Ok(());
    }
    match views::order(&app.journal, id).await? {
        Some(order) if CustomerId::parse(&order.customer_id).is_ok_and(|c| principal.may_act_for(&c)) => Ok(()),
        _ => Err(Problem::not_found(format!("no order {id}"))),
    }
}
