//! What the customer was told: at most one notification per order ending per
//! channel, through crashes and redeliveries.
//!
//! An external send is claimed in the journal before it happens and its
//! result recorded after, so the next step is always a pure function of the
//! journal ([`next_step`]): claim, send what is claimed, fall back, or stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use schemas::notification::{Channel, NotificationEvent};
use schemas::order::Outcome;
use schemas::subjects::EntityRef;
use schemas::{CustomerId, OrderId};
use serde::{Deserialize, Serialize};

use crate::shell::{Behavior, StepError};
use crate::Aggregate;

/// Where one notification stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Where it goes (an address, a URL); `None` for the log.
    pub recipient: Option<String>,
    /// The channel whose failure led here, if this is a fallback.
    pub fallback_of: Option<Channel>,
    /// What became of the send, once known.
    pub result: Option<DeliveryResult>,
    /// The customer marked it read.
    pub read: bool,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryResult {
    /// Delivered after this many tries.
    Sent { attempts: u32 },
    /// Given up after this many tries; `fallback` was tried next.
    Failed { attempts: u32, fallback: Option<Channel> },
}

/// An order's notifications, by ending and channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    /// Keyed by `notification_id` (`completed.email`).
    pub deliveries: BTreeMap<String, Delivery>,
    /// Endings (event types) the customer had opted out of.
    pub opted_out: Vec<String>,
}

impl Told {
    /// The notification of `outcome` on `channel`, if any.
    pub fn get(&self, outcome: Outcome, channel: Channel) -> Option<&Delivery> {
        self.deliveries
            .get(&schemas::notification::notification_id(outcome, channel))
    }

    fn of_outcome(&self, outcome: Outcome) -> impl Iterator<Item = (Channel, &Delivery)> {
        Channel::ALL
            .into_iter()
            .filter_map(move |c| self.get(outcome, c).map(|d| (c, d)))
    }

    fn is_opted_out(&self, outcome: Outcome) -> bool {
        self.opted_out.iter().any(|o| o == outcome.event_type())
    }
}

/// The ending to tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    /// Which order.
    pub order_id: OrderId,
    /// Whom to tell.
    pub customer_id: CustomerId,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for failed and cancelled orders.
    pub reason: Option<String>,
}

/// How to tell one customer, from their preferences and the node's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Tell nothing.
    pub opted_out: bool,
    /// Channels in order with their recipient: the first is the primary,
    /// each next one the fallback of the one before.
    pub chain: Vec<(Channel, Option<String>)>,
}

/// What to do next for an ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Record that the customer opted out.
    OptOut,
    /// Claim an external channel before sending on it.
    Claim {
        channel: Channel,
        recipient: Option<String>,
        fallback_of: Option<Channel>,
    },
    /// Send on a claimed channel (or on the log, which needs no claim),
    /// then record the result.
    Send {
        channel: Channel,
        recipient: Option<String>,
        fallback_of: Option<Channel>,
        /// The channel tried next should this one fail.
        fallback: Option<Channel>,
    },
    /// Nothing is left to do.
    Done,
}

/// The next step for `outcome`, given what the journal holds and the plan.
///
/// The journal wins over the plan: a claimed send is finished and a sent
/// notification stops the chain even if preferences changed since.
pub fn next_step(state: &Told, outcome: Outcome, plan: &Plan) -> Step {
    if state.is_opted_out(outcome) {
        return Step::Done;
    }
    let mut recorded = state.of_outcome(outcome).peekable();
    if recorded.peek().is_none() && plan.opted_out {
        return Step::OptOut;
    }
    let next_in_plan = |channel: Channel| {
        let at = plan.chain.iter().position(|(c, _)| *c == channel);
        at.and_then(|i| plan.chain.get(i + 1)).map(|(c, _)| *c)
    };
    for (channel, delivery) in recorded {
        match &delivery.result {
            Some(DeliveryResult::Sent { .. }) => return Step::Done,
            Some(DeliveryResult::Failed { .. }) => {}
            None => {
                return Step::Send {
                    channel,
                    recipient: delivery.recipient.clone(),
                    fallback_of: delivery.fallback_of,
                    fallback: next_in_plan(channel),
                }
            }
        }
    }
    let mut previous = None;
    for (channel, recipient) in &plan.chain {
        match state.get(outcome, *channel) {
            None if channel.is_external() => {
                return Step::Claim {
                    channel: *channel,
                    recipient: recipient.clone(),
                    fallback_of: previous,
                }
            }
            None => {
                return Step::Send {
                    channel: *channel,
                    recipient: recipient.clone(),
                    fallback_of: previous,
                    fallback: next_in_plan(*channel),
                }
            }
            // Failed (a sent or claimed one returned above).
            Some(_) => previous = Some(*channel),
        }
    }
    Step::Done
}

/// What a send came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendResult {
    /// Delivered: the text that was sent, after this many tries.
    Sent { message: String, attempts: u32 },
    /// Every try failed; the last error.
    Failed { error: String, attempts: u32 },
}

/// Everything that may be asked of an order's notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationCommand {
    /// Record that the customer opted out of this ending.
    OptOut(Ending),
    /// Claim `channel` before sending on it.
    Claim {
        ending: Ending,
        channel: Channel,
        recipient: String,
        fallback_of: Option<Channel>,
    },
    /// Record what a send came to.
    Record {
        ending: Ending,
        channel: Channel,
        recipient: Option<String>,
        fallback_of: Option<Channel>,
        fallback: Option<Channel>,
        result: SendResult,
    },
    /// The customer read a notification.
    MarkRead {
        order_id: OrderId,
        outcome: Outcome,
        channel: Channel,
    },
}

/// Why a notification command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationRejection {
    /// An external send's result arrived without its claim: a bug, never a guess.
    #[error("{0} was never claimed, so its result cannot be recorded")]
    NotClaimed(String),
    /// Only what was sent can be read.
    #[error("no notification {0} was sent")]
    NotSent(String),
}

/// The notification state machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifications;

/// Written directly (an operator's resend), nothing is answered: the events say what was told.
impl crate::Answers for Notifications {
    type Answer = ();

    fn answer(_: &Told, _: &NotificationCommand) {}
}

impl Aggregate for Notifications {
    type State = Told;
    type Event = NotificationEvent;
    type Command = NotificationCommand;
    type Rejection = NotificationRejection;

    fn decide(state: &Told, command: &NotificationCommand) -> Result<Vec<NotificationEvent>, NotificationRejection> {
        use schemas::notification::notification_id;
        match command {
            NotificationCommand::OptOut(e) => {
                let untouched = state.of_outcome(e.outcome).next().is_none() && !state.is_opted_out(e.outcome);
                Ok(untouched
                    .then(|| NotificationEvent::OptedOut {
                        order_id: e.order_id,
                        customer_id: e.customer_id.clone(),
                        outcome: e.outcome,
                    })
                    .into_iter()
                    .collect())
            }
            NotificationCommand::Claim {
                ending: e,
                channel,
                recipient,
                fallback_of,
            } => Ok(state
                .get(e.outcome, *channel)
                .is_none()
                .then(|| NotificationEvent::Claimed {
                    order_id: e.order_id,
                    customer_id: e.customer_id.clone(),
                    outcome: e.outcome,
                    channel: *channel,
                    recipient: recipient.clone(),
                    fallback_of: *fallback_of,
                })
                .into_iter()
                .collect()),
            NotificationCommand::Record {
                ending: e,
                channel,
                recipient,
                fallback_of,
                fallback,
                result,
            } => {
                match state.get(e.outcome, *channel) {
                    Some(Delivery { result: Some(_), .. }) => return Ok(Vec::new()),
                    None if channel.is_external() => {
                        return Err(NotificationRejection::NotClaimed(notification_id(e.outcome, *channel)))
                    }
                    _ => {}
                }
                Ok(vec![match result {
                    SendResult::Sent { message, attempts } => NotificationEvent::Sent {
                        order_id: e.order_id,
                        customer_id: e.customer_id.clone(),
                        outcome: e.outcome,
                        channel: *channel,
                        message: message.clone(),
                        attempts: *attempts,
                        recipient: recipient.clone(),
                        fallback_of: *fallback_of,
                    },
                    SendResult::Failed { error, attempts } => NotificationEvent::Failed {
                        order_id: e.order_id,
                        customer_id: e.customer_id.clone(),
                        outcome: e.outcome,
                        channel: *channel,
                        attempts: *attempts,
                        error: error.clone(),
                        fallback: *fallback,
                    },
                }])
            }
            NotificationCommand::MarkRead {
                order_id,
                outcome,
                channel,
            } => match state.get(*outcome, *channel) {
                Some(Delivery { read: true, .. }) => Ok(Vec::new()),
                Some(Delivery {
                    result: Some(DeliveryResult::Sent { .. }),
                    ..
                }) => Ok(vec![NotificationEvent::Read {
                    order_id: *order_id,
                    outcome: *outcome,
                    channel: *channel,
                }]),
                _ => Err(NotificationRejection::NotSent(notification_id(*outcome, *channel))),
            },
        }
    }

    fn evolve(mut state: Told, event: &NotificationEvent) -> Told {
        let outcome = event.outcome();
        let Some(channel) = event.channel() else {
            if !state.is_opted_out(outcome) {
                state.opted_out.push(outcome.event_type().to_owned());
            }
            return state;
        };
        let id = schemas::notification::notification_id(outcome, channel);
        let delivery = state.deliveries.entry(id).or_default();
        // Monotonic: a republished copy of an earlier event changes nothing
        // already decided, wherever it lands in the journal.
        match event {
            NotificationEvent::Claimed {
                recipient, fallback_of, ..
            } => {
                delivery.recipient.get_or_insert_with(|| recipient.clone());
                if delivery.fallback_of.is_none() {
                    delivery.fallback_of = *fallback_of;
                }
            }
            NotificationEvent::Sent {
                attempts,
                recipient,
                fallback_of,
                ..
            } => {
                if delivery.recipient.is_none() {
                    delivery.recipient.clone_from(recipient);
                }
                if delivery.fallback_of.is_none() {
                    delivery.fallback_of = *fallback_of;
                }
                delivery
                    .result
                    .get_or_insert(DeliveryResult::Sent { attempts: *attempts });
            }
            NotificationEvent::Failed { attempts, fallback, .. } => {
                delivery.result.get_or_insert(DeliveryResult::Failed {
                    attempts: *attempts,
                    fallback: *fallback,
                });
            }
            NotificationEvent::Read { .. } => delivery.read = true,
            NotificationEvent::OptedOut { .. } => {}
        }
        state
    }
}

/// Sends one notification on one channel, retrying as it sees fit.
pub trait Channels: Send + Sync + 'static {
    /// Sends `ending` on `channel` to `recipient`; never panics, never
    /// gives up silently: a failure says how many tries it took.
    fn send(
        &self,
        ending: &Ending,
        channel: Channel,
        recipient: Option<&str>,
    ) -> impl Future<Output = SendResult> + Send;
}

/// What the notification inbox asks of an order's notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyIntent {
    /// Take the next step of telling `ending` by `plan`.
    Advance { ending: Ending, plan: Plan },
    /// A command with no outside effect (a read receipt).
    Command(NotificationCommand),
}

/// The notifications' behaviour: send only what the journal says is
/// claimed and not yet settled.
pub struct NotifyBehavior<C> {
    channels: Arc<C>,
}

impl<C> NotifyBehavior<C> {
    /// Sends through `channels`.
    pub fn new(channels: Arc<C>) -> Self {
        Self { channels }
    }
}

impl<C: Channels> Behavior for NotifyBehavior<C> {
    type Aggregate = Notifications;
    type Intent = NotifyIntent;
    /// Nothing: the steps' events say what was told.
    type Answer = ();

    async fn command(
        &self,
        _: &EntityRef,
        state: &Told,
        intent: &NotifyIntent,
    ) -> Result<Option<NotificationCommand>, StepError> {
        let (ending, plan) = match intent {
            NotifyIntent::Advance { ending, plan } => (ending, plan),
            NotifyIntent::Command(command) => return Ok(Some(command.clone())),
        };
        Ok(match next_step(state, ending.outcome, plan) {
            Step::Done => None,
            Step::OptOut => Some(NotificationCommand::OptOut(ending.clone())),
            Step::Claim {
                channel,
                recipient,
                fallback_of,
            } => Some(NotificationCommand::Claim {
                ending: ending.clone(),
                channel,
                recipient: recipient.unwrap_or_default(),
                fallback_of,
            }),
            Step::Send {
                channel,
                recipient,
                fallback_of,
                fallback,
            } => {
                let result = self.channels.send(ending, channel, recipient.as_deref()).await;
                Some(NotificationCommand::Record {
                    ending: ending.clone(),
                    channel,
                    recipient,
                    fallback_of,
                    fallback,
                    result,
                })
            }
        })
    }

    fn needs_history(&self, _: &NotifyIntent) -> bool {
        true
    }

    fn answer(&self, _: &Told, _: &NotifyIntent) {}
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ending(outcome: Outcome) -> Ending {
        Ending {
            order_id: OrderId::from_idempotency_key(&CustomerId::parse("alice").unwrap(), "k"),
            customer_id: CustomerId::parse("alice").unwrap(),
            outcome,
            reason: None,
        }
    }

    fn plan(channels: &[Channel]) -> Plan {
        Plan {
            opted_out: false,
            chain: channels.iter().map(|c| (*c, Some(format!("to-{c}")))).collect(),
        }
    }

    /// Drives the steps with `fails` deciding which channels fail, like the
    /// shell would, and returns the journal.
    fn run(state: &mut Told, e: &Ending, plan: &Plan, fails: &[Channel]) -> Vec<NotificationEvent> {
        let mut journal = Vec::new();
        for _ in 0..16 {
            let command = match next_step(state, e.outcome, plan) {
                Step::Done => break,
                Step::OptOut => NotificationCommand::OptOut(e.clone()),
                Step::Claim {
                    channel,
                    recipient,
                    fallback_of,
                } => NotificationCommand::Claim {
                    ending: e.clone(),
                    channel,
                    recipient: recipient.unwrap_or_default(),
                    fallback_of,
                },
                Step::Send {
                    channel,
                    recipient,
                    fallback_of,
                    fallback,
                } => NotificationCommand::Record {
                    ending: e.clone(),
                    channel,
                    recipient,
                    fallback_of,
                    fallback,
                    result: if fails.contains(&channel) {
                        SendResult::Failed {
                            error: "down".into(),
                            attempts: 3,
                        }
                    } else {
                        SendResult::Sent {
                            message: "hi".into(),
                            attempts: 1,
                        }
                    },
                },
            };
            let events = Notifications::decide(state, &command).unwrap();
            assert!(!events.is_empty(), "a step that decides nothing loops: {command:?}");
            let settles = events.iter().any(NotificationEvent::settles);
            for event in events {
                *state = Notifications::evolve(std::mem::take(state), &event);
                journal.push(event);
            }
            // The shell stops asking after a settling event.
            if settles {
                assert_eq!(
                    next_step(state, e.outcome, plan),
                    Step::Done,
                    "settled, yet more to do: {journal:?}"
                );
            }
        }
        journal
    }

    fn sent(journal: &[NotificationEvent]) -> Vec<Channel> {
        journal
            .iter()
            .filter_map(|e| match e {
                NotificationEvent::Sent { channel, .. } => Some(*channel),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_primary_falls_back_to_the_next_channel() {
        let e = ending(Outcome::Completed);
        let p = plan(&[Channel::Email, Channel::Webhook, Channel::Log]);
        let journal = run(&mut Told::default(), &e, &p, &[Channel::Email]);
        let types: Vec<_> = journal.iter().map(|e| schemas::wire::Event::event_type(e)).collect();
        assert_eq!(types, ["claimed", "failed", "claimed", "sent"]);
        assert!(matches!(
            journal[1],
            NotificationEvent::Failed {
                fallback: Some(Channel::Webhook),
                ..
            }
        ));
        assert!(matches!(
            journal[3],
            NotificationEvent::Sent {
                fallback_of: Some(Channel::Email),
                ..
            }
        ));
    }

    #[test]
    fn a_claim_without_result_is_sent_again_to_the_same_recipient_even_if_preferences_changed() {
        let e = ending(Outcome::Failed);
        let mut state = Told::default();
        let claim = NotificationCommand::Claim {
            ending: e.clone(),
            channel: Channel::Webhook,
            recipient: "http://old".into(),
            fallback_of: None,
        };
        for event in Notifications::decide(&state, &claim).unwrap() {
            state = Notifications::evolve(state, &event);
        }
        match next_step(&state, e.outcome, &plan(&[Channel::Email])) {
            Step::Send { channel, recipient, .. } => {
                assert_eq!((channel, recipient.as_deref()), (Channel::Webhook, Some("http://old")))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn opting_out_records_once_and_sends_nothing() {
        let e = ending(Outcome::Cancelled);
        let mut p = plan(&[Channel::Email]);
        p.opted_out = true;
        let mut state = Told::default();
        let journal = run(&mut state, &e, &p, &[]);
        assert_eq!(journal.len(), 1);
        assert!(matches!(journal[0], NotificationEvent::OptedOut { .. }));
        assert_eq!(run(&mut state, &e, &p, &[]), Vec::new());
    }

    #[test]
    fn only_a_sent_notification_can_be_read_and_only_once() {
        let e = ending(Outcome::Completed);
        let mut state = Told::default();
        run(&mut state, &e, &plan(&[Channel::Log]), &[]);
        let read = |c| NotificationCommand::MarkRead {
            order_id: e.order_id,
            outcome: e.outcome,
            channel: c,
        };
        assert!(Notifications::decide(&state, &read(Channel::Email)).is_err());
        let events = Notifications::decide(&state, &read(Channel::Log)).unwrap();
        assert_eq!(events.len(), 1);
        let state = events.iter().fold(state, Notifications::evolve);
        assert_eq!(Notifications::decide(&state, &read(Channel::Log)), Ok(Vec::new()));
    }

    #[test]
    fn a_result_without_its_claim_is_refused() {
        let e = ending(Outcome::Completed);
        let record = NotificationCommand::Record {
            ending: e,
            channel: Channel::Email,
            recipient: None,
            fallback_of: None,
            fallback: None,
            result: SendResult::Sent {
                message: "x".into(),
                attempts: 1,
            },
        };
        assert!(matches!(
            Notifications::decide(&Told::default(), &record),
            Err(NotificationRejection::NotClaimed(_))
        ));
    }

    fn channels() -> impl Strategy<Value = Vec<Channel>> {
        proptest::sample::subsequence(Channel::ALL.to_vec(), 1..=3).prop_shuffle()
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Completed),
            Just(Outcome::Failed),
            Just(Outcome::Cancelled)
        ]
    }

    proptest! {
        /// Whatever fails and however often the ending is redelivered
        /// (each redelivery restarting from the journal), at most one send
        /// per channel, at most one success, and a success whenever some
        /// channel works.
        #[test]
        fn redelivered_endings_never_send_twice(
            chain in channels(),
            fails in proptest::sample::subsequence(Channel::ALL.to_vec(), 0..=3),
            redeliveries in 1usize..4,
            outcome in outcome(),
            crash_after in 0usize..6,
        ) {
            let e = ending(outcome);
            let p = plan(&chain);
            // A first delivery that crashes after `crash_after` events...
            let mut state = Told::default();
            let mut journal = run(&mut state, &e, &p, &fails);
            journal.truncate(crash_after.min(journal.len()));
            // ...then redeliveries, each folding the journal from scratch.
            for _ in 0..redeliveries {
                let mut state = Notifications::replay(&journal);
                let more = run(&mut state, &e, &p, &fails);
                journal.extend(more);
            }
            let mut attempts: Vec<_> = journal
                .iter()
                .filter(|e| matches!(e, NotificationEvent::Sent { .. } | NotificationEvent::Failed { .. }))
                .map(|e| e.channel())
                .collect();
            let before = attempts.len();
            attempts.sort();
            attempts.dedup();
            prop_assert_eq!(attempts.len(), before, "a channel settled twice: {:?}", journal);
            prop_assert!(sent(&journal).len() <= 1);
            let works = chain.iter().any(|c| !fails.contains(c));
            prop_assert_eq!(sent(&journal).len() == 1, works);
        }

        /// Evolve is monotonic: folding a journal twice over changes nothing.
        #[test]
        fn republished_events_change_nothing(chain in channels(), fails in proptest::sample::subsequence(Channel::ALL.to_vec(), 0..=3)) {
            let e = ending(Outcome::Completed);
            let journal = run(&mut Told::default(), &e, &plan(&chain), &fails);
            let once = Notifications::replay(&journal);
            let twice = journal.iter().fold(once.clone(), Notifications::evolve);
            prop_assert_eq!(once, twice);
        }
    }
}
